//! Import profiles: declarative mappings from staged rows (objects keyed by a CSV header) to
//! the canonical targets: a person, an organization the person works at, identifiers (emails,
//! phones, URLs, normalised by `spine_core::identifier`), and an external id.
//!
//! Each profile is a TOML file under `profiles/` at the repository root (format:
//! `profiles/README.md`), embedded here with `include_str!` from a closed list and parsed once.
//! A broken file fails `builtin()`'s test, so it cannot ship.
//!
//! - [`detect`] scores every profile against a header and returns the best one above its
//!   threshold; an upload can name a profile instead ([`by_name`]).
//! - [`Profile::map_row`] turns one row into a [`MappedContact`] proposal. It never fails:
//!   values it cannot use are listed in [`MappedContact::problems`], never dropped silently.
//!
//! Mapping rules (also in profiles/README.md):
//! - A person exists when the row has a name (full, given, middle, family or nickname), or an
//!   email, or, when there is no organization, any identifier. Without a name, the full name is
//!   the first (primary) email address, else the first identifier, with a problem note saying so.
//!   A full name missing from the file is composed from prefix, given, middle, family, suffix.
//! - A row with an organization and no person name or email maps to the organization alone;
//!   its phones and URLs then belong to the organization.
//! - Identifiers are deduplicated by (kind, normalised value) within a row; the first keeps its
//!   place, gains a label or the primary flag from a later duplicate. At most one identifier per
//!   kind is primary: the first one the profile or the file marks so.

mod detect;
mod map;
mod spec;

use std::sync::OnceLock;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use spine_core::identifier::IdentifierKind;
use thiserror::Error;

pub use detect::{Detection, detect, detect_all};

/// The built-in profiles, in tie-break order (specific formats first, the generic one last).
const BUILTIN_FILES: [(&str, &str); 6] = [
    ("google_contacts", include_str!("../../../../profiles/google_contacts.toml")),
    ("google_contacts_legacy", include_str!("../../../../profiles/google_contacts_legacy.toml")),
    ("outlook", include_str!("../../../../profiles/outlook.toml")),
    ("thunderbird", include_str!("../../../../profiles/thunderbird.toml")),
    ("zoho_crm", include_str!("../../../../profiles/zoho_crm.toml")),
    ("generic_people", include_str!("../../../../profiles/generic_people.toml")),
];

/// A profile file that does not parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProfileError {
    #[error("profile is not valid TOML for the profile format: {0}")]
    Syntax(String),
    #[error("profile `{name}` is invalid: {}", errors.join("; "))]
    Invalid { name: String, errors: Vec<String> },
}

/// One import profile. Built from its TOML file; see profiles/README.md for the format.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Unique, snake_case; the file name without `.toml`.
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// The system the file comes from (`google_contacts`, `outlook`, …, `csv` for generic):
    /// the `source_system` of records created from it.
    pub source_system: String,
    date_formats: Vec<String>,
    detect: spec::DetectSpec,
    person: spec::PersonSpec,
    organization_name: Vec<spec::Column>,
    job_title: Vec<spec::Column>,
    identifiers: Vec<spec::IdentifierRule>,
    external_id: Option<spec::ExternalIdSpec>,
}

impl Profile {
    /// Parses and validates a profile from its TOML text (the built-in ones go through this too).
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        spec::parse(text)
    }
}

/// Every built-in profile, parsed once. Panics only if a built-in file is broken, which the
/// `builtin_profiles_are_valid` test rules out.
pub fn builtin() -> &'static [Profile] {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        BUILTIN_FILES
            .iter()
            .map(|(file, text)| match Profile::from_toml(text) {
                Ok(p) if p.name == *file => p,
                Ok(p) => panic!("profiles/{file}.toml declares name `{}`", p.name),
                Err(e) => panic!("profiles/{file}.toml: {e}"),
            })
            .collect()
    })
}

/// The built-in profile called `name`.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    builtin().iter().find(|p| p.name == name)
}

/// Options of one mapping run (per upload).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOptions {
    /// Calling code for national phone numbers (`"44"` or `"+44"`); without one they stay digits.
    pub default_calling_code: Option<String>,
}

/// What one staged row proposes. Stored as JSON in the staging row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MappedContact {
    pub person: Option<PersonFields>,
    pub organization: Option<OrganizationFields>,
    /// The person's job title at [`MappedContact::organization`] (only with a person).
    pub job_title: Option<String>,
    /// Belong to the person when there is one, else to the organization.
    pub identifiers: Vec<MappedIdentifier>,
    pub external_id: Option<ExternalRef>,
    /// Everything the mapping could not use, one sentence each: values that are not valid
    /// identifiers, unparseable birthdays, fallbacks taken. The raw row stays in staging.
    pub problems: Vec<String>,
}

impl MappedContact {
    /// Nothing usable: no person, no organization, no identifier (the promotion step proposes
    /// "skip"). An external id alone does not count: there is nothing to attach it to.
    pub fn is_empty(&self) -> bool {
        self.person.is_none() && self.organization.is_none() && self.identifiers.is_empty()
    }
}

/// `core.people` columns. `full_name` is always set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonFields {
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: String,
    pub nickname: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub notes: Option<String>,
}

/// `core.organizations` columns (`name` becomes `legal_name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationFields {
    pub name: String,
}

/// One `core.identifiers` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedIdentifier {
    /// Serialised as the database value (`email`, `phone`, `url`).
    pub kind: IdentifierKind,
    /// The text from the file (trimmed; one item of a multi-value cell).
    pub value: String,
    pub normalized: String,
    /// `work`, `home`, `mobile`, … (lowercase, `_` between words), from the profile or the file.
    pub label: Option<String>,
    pub is_primary: bool,
}

/// One `qiconnect.external_ids` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRef {
    pub source_system: String,
    pub external_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_are_valid() {
        let names: Vec<_> = builtin().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, BUILTIN_FILES.map(|(n, _)| n));
        assert!(by_name("outlook").is_some());
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn broken_profiles_are_refused_with_every_reason() {
        assert!(matches!(Profile::from_toml("name = "), Err(ProfileError::Syntax(_))));
        let unknown_key =
            "name='x'\ndisplay_name='X'\nsource_system='x'\ncolour='red'\n[detect]\nany=['a']\nmin_score=0.5";
        assert!(matches!(Profile::from_toml(unknown_key), Err(ProfileError::Syntax(_))));
        let bad = r#"
            name = "Bad Name"
            display_name = " "
            source_system = "x"
            date_formats = ["%Q"]
            [detect]
            min_score = 2.0
            weight = 0
            [person]
            birth_year = "Y"
            [[identifiers]]
            kind = "username"
            column = "A {n} {n}"
            label = "Work"
            label_column = "B {n}"
        "#;
        let Err(ProfileError::Invalid { errors, .. }) = Profile::from_toml(bad) else { panic!("accepted") };
        for needle in [
            "snake_case",
            "display_name",
            "%Q",
            "go together",
            "detect needs",
            "min_score",
            "weight",
            "username",
            "more than one",
            "not both",
            "label `Work`",
        ] {
            assert!(errors.iter().any(|e| e.contains(needle)), "no error about {needle}: {errors:?}");
        }
    }
}
