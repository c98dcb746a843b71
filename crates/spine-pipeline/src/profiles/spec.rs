//! The profile file format (profiles/README.md) and its validation. A profile is parsed from
//! TOML into [`ProfileFile`] (serde, unknown keys rejected), then checked and compiled into
//! a [`Profile`]: column names normalised, `{n}` patterns split, labels checked.

use std::collections::HashSet;

use chrono::format::{Item, StrftimeItems};
use serde::Deserialize;
use spine_core::identifier::IdentifierKind;

use super::{Profile, ProfileError};

/// One column name or several (aliases, tried in order).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Columns {
    One(String),
    Many(Vec<String>),
}

impl Columns {
    fn into_vec(self) -> Vec<String> {
        match self {
            Columns::One(c) => vec![c],
            Columns::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    display_name: String,
    #[serde(default)]
    description: String,
    source_system: String,
    #[serde(default)]
    date_formats: Vec<String>,
    detect: DetectFile,
    #[serde(default)]
    person: PersonFile,
    #[serde(default)]
    organization: OrganizationFile,
    #[serde(default)]
    identifiers: Vec<IdentifierFile>,
    external_id: Option<ExternalIdFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectFile {
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    any: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
    min_score: f32,
    #[serde(default = "one")]
    weight: f32,
}

fn one() -> f32 {
    1.0
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonFile {
    full_name: Option<Columns>,
    given_name: Option<Columns>,
    middle_name: Option<Columns>,
    family_name: Option<Columns>,
    name_prefix: Option<Columns>,
    name_suffix: Option<Columns>,
    nickname: Option<Columns>,
    birth_date: Option<Columns>,
    birth_year: Option<Columns>,
    birth_month: Option<Columns>,
    birth_day: Option<Columns>,
    notes: Option<Columns>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationFile {
    name: Option<Columns>,
    job_title: Option<Columns>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierFile {
    kind: IdentifierKind,
    column: Columns,
    label: Option<String>,
    label_column: Option<String>,
    split: Option<String>,
    #[serde(default)]
    primary: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalIdFile {
    source_system: String,
    column: Columns,
}

/// A column reference: a literal name, or a pattern with one `{n}` standing for a number.
/// Names are compared normalised ([`norm`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// As written in the profile.
    pub(crate) raw: String,
    /// Normalised text before `{n}` (the whole name when there is no `{n}`).
    prefix: String,
    /// Normalised text after `{n}`; `None` for a literal name.
    suffix: Option<String>,
}

impl Column {
    fn parse(raw: &str) -> Result<Column, String> {
        if raw.trim().is_empty() {
            return Err("empty column name".to_owned());
        }
        let normalised = norm(raw);
        match normalised.matches("{n}").count() {
            0 => Ok(Column { raw: raw.to_owned(), prefix: normalised, suffix: None }),
            1 => {
                let (prefix, suffix) = normalised.split_once("{n}").unwrap_or_default();
                Ok(Column { raw: raw.to_owned(), prefix: prefix.to_owned(), suffix: Some(suffix.to_owned()) })
            }
            _ => Err(format!("column `{raw}` has more than one {{n}}")),
        }
    }

    pub(crate) fn is_pattern(&self) -> bool {
        self.suffix.is_some()
    }

    /// The normalised literal name (`None` for a pattern).
    pub(crate) fn literal(&self) -> Option<&str> {
        if self.suffix.is_none() { Some(&self.prefix) } else { None }
    }

    /// For a normalised header name: `Some(0)` when a literal matches, `Some(n)` when the
    /// pattern matches with number `n`.
    pub(crate) fn matches(&self, key: &str) -> Option<u32> {
        match &self.suffix {
            None => (self.prefix == key).then_some(0),
            Some(suffix) => {
                let middle = key.strip_prefix(self.prefix.as_str())?.strip_suffix(suffix.as_str())?;
                let valid = !middle.is_empty() && middle.len() <= 4 && middle.bytes().all(|b| b.is_ascii_digit());
                if valid { middle.parse().ok() } else { None }
            }
        }
    }

    /// The normalised name with `{n}` replaced by `n` (the literal itself when not a pattern).
    pub(crate) fn with_n(&self, n: u32) -> String {
        match &self.suffix {
            None => self.prefix.clone(),
            Some(suffix) => format!("{}{n}{suffix}", self.prefix),
        }
    }
}

/// Header names compare case-insensitively, trimmed, with runs of whitespace as one space.
pub(crate) fn norm(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A label as stored: lowercase, words joined by `_` (`Home Fax` → `home_fax`).
pub(crate) fn norm_label(label: &str) -> String {
    label
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
        .to_lowercase()
}

#[derive(Debug, Clone)]
pub(crate) struct PersonSpec {
    pub(crate) full_name: Vec<Column>,
    pub(crate) given_name: Vec<Column>,
    pub(crate) middle_name: Vec<Column>,
    pub(crate) family_name: Vec<Column>,
    pub(crate) name_prefix: Vec<Column>,
    pub(crate) name_suffix: Vec<Column>,
    pub(crate) nickname: Vec<Column>,
    pub(crate) birth_date: Vec<Column>,
    pub(crate) birth_year: Vec<Column>,
    pub(crate) birth_month: Vec<Column>,
    pub(crate) birth_day: Vec<Column>,
    pub(crate) notes: Vec<Column>,
}

#[derive(Debug, Clone)]
pub(crate) struct IdentifierRule {
    pub(crate) kind: IdentifierKind,
    pub(crate) columns: Vec<Column>,
    pub(crate) label: Option<String>,
    pub(crate) label_column: Option<Column>,
    pub(crate) split: Option<String>,
    pub(crate) primary: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ExternalIdSpec {
    pub(crate) source_system: String,
    pub(crate) columns: Vec<Column>,
}

#[derive(Debug, Clone)]
pub(crate) struct DetectSpec {
    pub(crate) required: Vec<Column>,
    pub(crate) any: Vec<Column>,
    pub(crate) optional: Vec<Column>,
    pub(crate) min_score: f32,
    pub(crate) weight: f32,
    /// Every column the profile knows: detection lists and mapped columns.
    pub(crate) known: Vec<Column>,
}

fn columns(field: &str, value: Option<Columns>, errors: &mut Vec<String>) -> Vec<Column> {
    let names = value.map(Columns::into_vec).unwrap_or_default();
    names.iter().filter_map(|raw| Column::parse(raw).map_err(|e| errors.push(format!("{field}: {e}"))).ok()).collect()
}

fn snake_case(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parses and validates one profile. Every problem found is reported, not just the first.
pub(crate) fn parse(text: &str) -> Result<Profile, ProfileError> {
    let file: ProfileFile = toml::from_str(text).map_err(|e| ProfileError::Syntax(e.to_string()))?;
    let mut errors = Vec::new();
    if !snake_case(&file.name) {
        errors.push(format!("name `{}` must be snake_case", file.name));
    }
    if file.display_name.trim().is_empty() {
        errors.push("display_name is empty".to_owned());
    }
    if !snake_case(&file.source_system) {
        errors.push(format!("source_system `{}` must be snake_case", file.source_system));
    }
    for f in &file.date_formats {
        if f.is_empty() || StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
            errors.push(format!("date format `{f}` is not a valid strftime format"));
        }
    }
    let p = file.person;
    let person = PersonSpec {
        full_name: columns("person.full_name", p.full_name, &mut errors),
        given_name: columns("person.given_name", p.given_name, &mut errors),
        middle_name: columns("person.middle_name", p.middle_name, &mut errors),
        family_name: columns("person.family_name", p.family_name, &mut errors),
        name_prefix: columns("person.name_prefix", p.name_prefix, &mut errors),
        name_suffix: columns("person.name_suffix", p.name_suffix, &mut errors),
        nickname: columns("person.nickname", p.nickname, &mut errors),
        birth_date: columns("person.birth_date", p.birth_date, &mut errors),
        birth_year: columns("person.birth_year", p.birth_year, &mut errors),
        birth_month: columns("person.birth_month", p.birth_month, &mut errors),
        birth_day: columns("person.birth_day", p.birth_day, &mut errors),
        notes: columns("person.notes", p.notes, &mut errors),
    };
    let split_birth = [&person.birth_year, &person.birth_month, &person.birth_day];
    if split_birth.iter().any(|c| !c.is_empty()) && split_birth.iter().any(|c| c.is_empty()) {
        errors.push("person.birth_year, birth_month and birth_day go together".to_owned());
    }
    if !person.birth_date.is_empty() && file.date_formats.is_empty() {
        errors.push("person.birth_date needs date_formats".to_owned());
    }
    let organization_name = columns("organization.name", file.organization.name, &mut errors);
    let job_title = columns("organization.job_title", file.organization.job_title, &mut errors);
    let identifiers = identifier_rules(file.identifiers, &mut errors);
    let external_id = file.external_id.map(|e| {
        if !snake_case(&e.source_system) {
            errors.push(format!("external_id.source_system `{}` must be snake_case", e.source_system));
        }
        ExternalIdSpec {
            source_system: e.source_system,
            columns: columns("external_id.column", Some(e.column), &mut errors),
        }
    });
    let d = file.detect;
    let required = columns("detect.required", Some(Columns::Many(d.required)), &mut errors);
    let any = columns("detect.any", Some(Columns::Many(d.any)), &mut errors);
    let optional = columns("detect.optional", Some(Columns::Many(d.optional)), &mut errors);
    if required.is_empty() && any.is_empty() {
        errors.push("detect needs `required` or `any` columns".to_owned());
    }
    if !(0.0..=1.0).contains(&d.min_score) {
        errors.push(format!("detect.min_score {} must be between 0 and 1", d.min_score));
    }
    if !(d.weight > 0.0 && d.weight <= 1.0) {
        errors.push(format!("detect.weight {} must be above 0 and at most 1", d.weight));
    }
    let maps_anything = !person.full_name.is_empty()
        || !person.given_name.is_empty()
        || !person.family_name.is_empty()
        || !organization_name.is_empty()
        || !identifiers.is_empty();
    if !maps_anything {
        errors.push("the profile maps no name, organization or identifier".to_owned());
    }
    if !errors.is_empty() {
        return Err(ProfileError::Invalid { name: file.name, errors });
    }
    let mut known: Vec<Column> = Vec::new();
    let mapped = [
        &person.full_name,
        &person.given_name,
        &person.middle_name,
        &person.family_name,
        &person.name_prefix,
        &person.name_suffix,
        &person.nickname,
        &person.birth_date,
        &person.birth_year,
        &person.birth_month,
        &person.birth_day,
        &person.notes,
        &organization_name,
        &job_title,
        &required,
        &any,
        &optional,
    ];
    let rule_columns = identifiers.iter().flat_map(|r| r.columns.iter().chain(r.label_column.as_ref()));
    let external = external_id.iter().flat_map(|e| e.columns.iter());
    let mut seen = HashSet::new();
    for c in mapped.into_iter().flatten().chain(rule_columns).chain(external) {
        if seen.insert((c.prefix.clone(), c.suffix.clone())) {
            known.push(c.clone());
        }
    }
    Ok(Profile {
        name: file.name,
        display_name: file.display_name,
        description: file.description,
        source_system: file.source_system,
        date_formats: file.date_formats,
        detect: DetectSpec { required, any, optional, min_score: d.min_score, weight: d.weight, known },
        person,
        organization_name,
        job_title,
        identifiers,
        external_id,
    })
}

fn identifier_rules(rules: Vec<IdentifierFile>, errors: &mut Vec<String>) -> Vec<IdentifierRule> {
    let mut out = Vec::new();
    for (i, r) in rules.into_iter().enumerate() {
        let at = format!("identifiers[{i}]");
        if !matches!(r.kind, IdentifierKind::Email | IdentifierKind::Phone | IdentifierKind::Url) {
            errors.push(format!("{at}: kind `{}` has no normaliser; use email, phone or url", r.kind));
        }
        let cols = columns(&format!("{at}.column"), Some(r.column), errors);
        if cols.is_empty() {
            errors.push(format!("{at}: no column"));
        }
        if r.label.is_some() && r.label_column.is_some() {
            errors.push(format!("{at}: use `label` or `label_column`, not both"));
        }
        if let Some(label) = &r.label
            && (label.is_empty() || norm_label(label) != *label)
        {
            errors.push(format!("{at}: label `{label}` must be lowercase words joined by `_`"));
        }
        let label_column = r.label_column.as_deref().and_then(|raw| match Column::parse(raw) {
            Ok(c) if c.is_pattern() && !cols.iter().all(Column::is_pattern) => {
                errors.push(format!("{at}: label_column `{raw}` has {{n}} but the column does not"));
                None
            }
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(format!("{at}.label_column: {e}"));
                None
            }
        });
        if r.split.as_deref().is_some_and(|s| s.trim().is_empty()) {
            errors.push(format!("{at}: split must not be blank"));
        }
        out.push(IdentifierRule {
            kind: r.kind,
            columns: cols,
            label: r.label,
            label_column,
            split: r.split,
            primary: r.primary,
        });
    }
    out
}
