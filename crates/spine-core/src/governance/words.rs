//! Name heuristics used by the governance rules. Deliberately simple and predictable: a wrong
//! verdict is fixed by renaming or by recording a reason in the registry, never by guessing harder.

/// Lowercase snake_case: `^[a-z][a-z0-9_]*$`.
pub fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z')) && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Words accepted as plural although they do not end in `s`: uncountable nouns and irregular
/// plurals that make fine table names (`core.people`, `qinexus.metadata`, `qisystem.staff`).
pub const PLURAL_WITHOUT_S: &[&str] = &[
    "data",
    "metadata",
    "media",
    "staff",
    "personnel",
    "people",
    "children",
    "criteria",
    "information",
    "equipment",
    "software",
    "hardware",
    "feedback",
];

/// Trailing words that qualify a table's state rather than name its rows (seed 001 §11 names
/// staging tables `zoho_contacts_raw`, `chrome_passwords_quarantine`); the noun before them is the
/// one that must be plural.
pub const STATE_QUALIFIERS: &[&str] = &["raw", "quarantine", "import"];

/// The word of a table name that must be plural: the last `_`-separated word containing a letter
/// that is not a [`STATE_QUALIFIERS`] word (so `events_2024` is judged by `events` and
/// `zoho_contacts_raw` by `contacts`); a name made only of qualifiers is judged by its last one.
/// `None` when no word has a letter.
pub fn last_word(name: &str) -> Option<&str> {
    let words: Vec<&str> = name.rsplit('_').filter(|w| w.chars().any(|c| c.is_ascii_alphabetic())).collect();
    let is_qualifier = |w: &&str| STATE_QUALIFIERS.contains(&w.to_ascii_lowercase().as_str());
    words.iter().find(|w| !is_qualifier(w)).or(words.first()).copied()
}

/// The plural heuristic of `singular-table-name`: a word is plural when it ends in `s` but not in
/// `ss` (`addresses` yes, `address`, `access` no), or is listed in [`PLURAL_WITHOUT_S`]. Known
/// blind spots: singular words ending in `s` such as `status` or `census` pass, and irregular
/// plurals not in the list (`indices` passes by its `s`, `men` does not) need a
/// `naming_exception_reason`.
pub fn is_plural(word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    PLURAL_WITHOUT_S.contains(&word.as_str()) || (word.ends_with('s') && !word.ends_with("ss"))
}

/// Substrings that mark a name as holding credential material (§14.3).
pub const SECRET_MARKERS: &[&str] =
    &["password", "passwd", "secret", "api_key", "apikey", "token", "private_key", "credential"];

/// Suffixes that mark a name as a reference to a secret kept elsewhere (in `qivault`), not the
/// secret itself: `token_ref`, `api_token_refs`, `credential_id`, `secret_ids`.
pub const REFERENCE_SUFFIXES: &[&str] = &["_ref", "_refs", "_id", "_ids"];

/// The secret marker a table or column name contains, unless the name ends in a
/// [`REFERENCE_SUFFIXES`] suffix. Matching is by substring (`oauth_access_token`,
/// `api_keys`, `user_passwords` all match); names in `qivault` are never checked.
pub fn secret_marker(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if REFERENCE_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return None;
    }
    SECRET_MARKERS.iter().copied().find(|m| lower.contains(m))
}

/// File formats and containers that describe where data came from, not what it means (§6, §14.2).
pub const LOCATION_WORDS: &[&str] = &["csv", "json", "xlsx", "sheet", "sheets"];

/// The location word a name contains as a whole `_`-separated word (`csv_contacts`,
/// `contacts_csv`, `zoho_csv_rows`; not `jsonb_payload` or `sheeted`).
pub fn location_word(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    lower.split('_').find_map(|w| LOCATION_WORDS.iter().copied().find(|l| *l == w))
}

/// Suffixes of raw-import tables, which belong in `staging` only (§14.5).
pub const RAW_IMPORT_SUFFIXES: &[&str] = &["_imports", "_import", "_raw"];

/// The raw-import suffix a table name ends with, if any.
pub fn raw_import_suffix(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    RAW_IMPORT_SUFFIXES.iter().copied().find(|s| lower.ends_with(s))
}
