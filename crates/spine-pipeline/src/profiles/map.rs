//! [`Profile::map_row`]: one staged row to a [`MappedContact`].

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};
use spine_core::identifier::{IdentifierKind, normalize_email, normalize_phone, normalize_url};

use super::spec::{Column, IdentifierRule, norm, norm_label};
use super::{ExternalRef, MapOptions, MappedContact, MappedIdentifier, OrganizationFields, PersonFields, Profile};

/// A row's cells by normalised column name, values trimmed.
struct Cells<'a> {
    by_name: HashMap<String, (&'a str, Cow<'a, str>)>,
    /// Normalised names in header order.
    order: Vec<String>,
    /// Keys whose value is a JSON list or object (read as empty).
    nested: Vec<&'a str>,
}

impl<'a> Cells<'a> {
    fn new(row: &'a Map<String, Value>) -> Self {
        let mut by_name = HashMap::with_capacity(row.len());
        let mut order = Vec::with_capacity(row.len());
        let mut nested = Vec::new();
        for (key, value) in row {
            if matches!(value, Value::Array(_) | Value::Object(_)) {
                nested.push(key.as_str());
            }
            let text: Cow<'a, str> = match value {
                Value::String(s) => Cow::Borrowed(s.trim()),
                Value::Number(n) => Cow::Owned(n.to_string()),
                Value::Bool(b) => Cow::Owned(b.to_string()),
                Value::Null | Value::Array(_) | Value::Object(_) => Cow::Borrowed(""),
            };
            // Two keys that differ only in case or spacing: the second reads as a repeat.
            let base = norm(key);
            let mut name = base.clone();
            let mut k = 1;
            while by_name.contains_key(&name) {
                k += 1;
                name = format!("{base}_{k}");
            }
            by_name.insert(name.clone(), (key.as_str(), text));
            order.push(name);
        }
        Cells { by_name, order, nested }
    }

    /// Non-empty cells of a column, as (header name, value): a literal column followed by its
    /// repeats (`Notes`, `Notes_2`, …), or every instance of a `{n}` pattern in number order
    /// with its number.
    fn values(&self, column: &Column) -> Vec<(u32, &'a str, &str)> {
        let mut out = Vec::new();
        if let Some(name) = column.literal() {
            let mut k = 1;
            let mut key = name.to_owned();
            while let Some((raw, text)) = self.by_name.get(&key) {
                if !text.is_empty() {
                    out.push((0, *raw, text.as_ref()));
                }
                k += 1;
                key = format!("{name}_{k}");
            }
        } else {
            let mut found: Vec<(u32, &String)> =
                self.order.iter().filter_map(|n| column.matches(n).map(|k| (k, n))).collect();
            found.sort_by_key(|(k, _)| *k);
            for (k, n) in found {
                let (raw, text) = &self.by_name[n];
                if !text.is_empty() {
                    out.push((k, *raw, text.as_ref()));
                }
            }
        }
        out
    }

    /// The first non-empty value among the columns.
    fn first(&self, columns: &[Column]) -> Option<String> {
        columns.iter().find_map(|c| self.values(c).first().map(|(_, _, v)| (*v).to_owned()))
    }

    fn cell(&self, normalised: &str) -> Option<&str> {
        self.by_name.get(normalised).map(|(_, t)| t.as_ref()).filter(|t| !t.is_empty())
    }
}

impl Profile {
    /// Maps one staged row (an object keyed by the header). Never fails and never panics:
    /// what cannot be used is described in [`MappedContact::problems`].
    pub fn map_row(&self, row: &Map<String, Value>, opts: &MapOptions) -> MappedContact {
        let cells = Cells::new(row);
        let mut problems = Vec::new();
        for key in &cells.nested {
            if self.detect.known.iter().any(|c| c.matches(&norm(key)).is_some()) {
                problems.push(format!(
                    "column `{key}` holds a JSON list or object; only text, numbers and booleans are read"
                ));
            }
        }
        let p = &self.person;
        let given = cells.first(&p.given_name);
        let middle = cells.first(&p.middle_name);
        let family = cells.first(&p.family_name);
        let full = cells.first(&p.full_name);
        let nickname = cells.first(&p.nickname);
        let birth_date = self.birth_date(&cells, &mut problems);
        let notes = join_all(&cells, &p.notes);
        let org_name = cells.first(&self.organization_name);
        let job_title = cells.first(&self.job_title);
        let identifiers = self.identifiers(&cells, opts, &mut problems);
        let external_id = self.external_id.as_ref().and_then(|e| {
            cells.first(&e.columns).map(|id| ExternalRef { source_system: e.source_system.clone(), external_id: id })
        });

        let composed =
            [cells.first(&p.name_prefix), given.clone(), middle.clone(), family.clone(), cells.first(&p.name_suffix)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
        let has_parts = given.is_some() || middle.is_some() || family.is_some();
        if full.is_none() && !has_parts && !composed.is_empty() {
            problems.push(format!("name prefix or suffix `{composed}` not mapped: the row has no name"));
        }
        let first_email = first_of_kind(&identifiers, IdentifierKind::Email);
        let full_name = if let Some(full) = full {
            Some(full)
        } else if has_parts {
            Some(composed)
        } else if let Some(nick) = nickname.clone() {
            problems.push(format!("no name in the row; the full name is the nickname `{nick}`"));
            Some(nick)
        } else if let Some(email) = first_email {
            problems.push(format!("no name in the row; the full name is the email address `{}`", email.normalized));
            Some(email.normalized.clone())
        } else if org_name.is_none() && !identifiers.is_empty() {
            let first = &identifiers[0];
            problems.push(format!("no name in the row; the full name is the {} `{}`", first.kind, first.value));
            Some(first.value.clone())
        } else {
            None
        };
        let person = match full_name {
            Some(full_name) => Some(PersonFields {
                given_name: given,
                middle_name: middle,
                family_name: family,
                full_name,
                nickname,
                birth_date,
                notes,
            }),
            None => {
                if let Some(d) = birth_date {
                    problems.push(format!("birth date {d} not mapped: the row has no person"));
                }
                if let Some(n) = notes {
                    problems.push(format!("notes not mapped, the row has no person: {}", clip(&n, 200)));
                }
                None
            }
        };
        let job_title = match (job_title, &person) {
            (Some(t), None) => {
                problems.push(format!("job title `{t}` not mapped: the row has no person"));
                None
            }
            (t, _) => t,
        };
        MappedContact {
            person,
            organization: org_name.map(|name| OrganizationFields { name }),
            job_title,
            identifiers,
            external_id,
            problems,
        }
    }

    fn identifiers(&self, cells: &Cells<'_>, opts: &MapOptions, problems: &mut Vec<String>) -> Vec<MappedIdentifier> {
        let mut out: Vec<MappedIdentifier> = Vec::new();
        for rule in &self.identifiers {
            for column in &rule.columns {
                for (n, header, text) in cells.values(column) {
                    let label_cell = rule.label_column.as_ref().and_then(|lc| cells.cell(&lc.with_n(n)));
                    for (value, label) in split_values(rule, text, label_cell) {
                        let (mut label, marked) = parse_label(label);
                        if label.is_none() {
                            label = rule.label.clone();
                        }
                        match normalize(rule.kind, value, opts) {
                            Ok(normalized) => push_unique(
                                &mut out,
                                MappedIdentifier {
                                    kind: rule.kind,
                                    value: value.to_owned(),
                                    normalized,
                                    label,
                                    is_primary: rule.primary || marked,
                                },
                            ),
                            Err(e) => problems.push(format!(
                                "{} `{}` in column `{header}`{} is not usable: {e}",
                                rule.kind,
                                clip(value, 100),
                                label.map(|l| format!(" (label {l})")).unwrap_or_default()
                            )),
                        }
                    }
                }
            }
        }
        let mut primary_seen = Vec::new();
        for id in &mut out {
            if id.is_primary {
                if primary_seen.contains(&id.kind) {
                    id.is_primary = false;
                } else {
                    primary_seen.push(id.kind);
                }
            }
        }
        out
    }

    fn birth_date(&self, cells: &Cells<'_>, problems: &mut Vec<String>) -> Option<NaiveDate> {
        let p = &self.person;
        if let Some(text) = cells.first(&p.birth_date) {
            return match parse_date(&text, &self.date_formats) {
                Ok(Parsed::Date(d, None)) => Some(d),
                Ok(Parsed::Date(d, Some(other))) => {
                    problems.push(format!("birthday `{text}` is ambiguous: read as {d}, could be {other}"));
                    Some(d)
                }
                Ok(Parsed::Unset) => None,
                Err(why) => {
                    problems.push(format!("birthday `{}` not mapped: {why}", clip(&text, 60)));
                    None
                }
            };
        }
        let (y, m, d) = (cells.first(&p.birth_year), cells.first(&p.birth_month), cells.first(&p.birth_day));
        if y.is_none() && m.is_none() && d.is_none() {
            return None;
        }
        let num = |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<u32>().ok());
        let date = match (num(&y), num(&m), num(&d)) {
            (Some(y), Some(m), Some(d)) if (1000..=9999).contains(&y) => NaiveDate::from_ymd_opt(y as i32, m, d),
            _ => None,
        };
        if date.is_none() {
            let shown = [y, m, d].map(|v| v.unwrap_or_else(|| "?".to_owned())).join("-");
            problems.push(format!("birthday {shown} (year-month-day) not mapped: not a complete, valid date"));
        }
        date
    }
}

/// The values of one cell with their labels: split on the rule's separator when it has one
/// (labels split alike when the counts match, else the whole label applies to each value).
fn split_values<'t>(rule: &IdentifierRule, text: &'t str, label: Option<&'t str>) -> Vec<(&'t str, Option<&'t str>)> {
    let Some(sep) = rule.split.as_deref() else { return vec![(text, label)] };
    let values: Vec<&str> = text.split(sep).map(str::trim).filter(|v| !v.is_empty()).collect();
    let labels: Vec<&str> = label.map(|l| l.split(sep).map(str::trim).collect()).unwrap_or_default();
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, if labels.len() == values.len() { Some(labels[i]) } else { label }))
        .collect()
}

/// A label from the file: a leading `*` marks the primary value (Google); the rest is
/// normalised (`* Home Fax` → primary, `home_fax`).
fn parse_label(label: Option<&str>) -> (Option<String>, bool) {
    let Some(label) = label.map(str::trim) else { return (None, false) };
    let (rest, marked) = match label.strip_prefix('*') {
        Some(rest) => (rest, true),
        None => (label, false),
    };
    let normalised = norm_label(rest);
    ((!normalised.is_empty()).then_some(normalised), marked)
}

fn normalize(
    kind: IdentifierKind,
    value: &str,
    opts: &MapOptions,
) -> Result<String, spine_core::identifier::IdentifierError> {
    match kind {
        IdentifierKind::Email => normalize_email(value),
        IdentifierKind::Phone => {
            normalize_phone(value, opts.default_calling_code.as_deref()).map(|p| p.as_normalized())
        }
        IdentifierKind::Url => normalize_url(value),
        // Profiles are validated to map only the three kinds above.
        _ => Ok(value.trim().to_owned()),
    }
}

fn push_unique(out: &mut Vec<MappedIdentifier>, id: MappedIdentifier) {
    match out.iter_mut().find(|o| o.kind == id.kind && o.normalized == id.normalized) {
        Some(existing) => {
            existing.is_primary |= id.is_primary;
            if existing.label.is_none() {
                existing.label = id.label;
            }
        }
        None => out.push(id),
    }
}

fn first_of_kind(ids: &[MappedIdentifier], kind: IdentifierKind) -> Option<&MappedIdentifier> {
    ids.iter().filter(|i| i.kind == kind).find(|i| i.is_primary).or_else(|| ids.iter().find(|i| i.kind == kind))
}

/// All non-empty cells of the columns (and their repeats), joined by a blank line.
fn join_all(cells: &Cells<'_>, columns: &[Column]) -> Option<String> {
    let parts: Vec<&str> = columns.iter().flat_map(|c| cells.values(c)).map(|(_, _, v)| v).collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

enum Parsed {
    /// The date, and a different reading another listed format gives.
    Date(NaiveDate, Option<NaiveDate>),
    /// An explicit "no date" (Outlook writes `0/0/00`).
    Unset,
}

fn parse_date(text: &str, formats: &[String]) -> Result<Parsed, String> {
    let text = text.trim();
    if text.chars().any(|c| c.is_ascii_digit()) && text.chars().all(|c| c == '0' || !c.is_ascii_alphanumeric()) {
        return Ok(Parsed::Unset);
    }
    if text.starts_with("--") {
        return Err("it has no year, and a birth date needs one".to_owned());
    }
    let plausible = |d: &NaiveDate| (1000..=9999).contains(&d.year());
    let mut readings = formats.iter().filter_map(|f| NaiveDate::parse_from_str(text, f).ok().filter(plausible));
    let Some(first) = readings.next() else {
        return Err(format!("not a date in the formats {}", formats.join(", ")));
    };
    let other = readings.find(|d| *d != first);
    Ok(Parsed::Date(first, other))
}
