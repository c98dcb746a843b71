//! The engine of `spine governance check`: compares what the database holds (PostgreSQL's catalog)
//! with what the governance registry says it should hold (`qieos.schemas`, `qieos.tables`,
//! `qieos.field_usages`) and with the rules of seed 001. Pure: the store reads a [`Snapshot`],
//! [`check`] turns it into [`Violation`]s.
//!
//! # Scope
//! PostgreSQL's own schemas (`pg_catalog`, `information_schema`, `pg_toast`, `pg_temp_*`, anything
//! starting `pg_`) are never looked at. `public` is not governed either, except that any table in
//! it other than sqlx's `_sqlx_migrations` is a `public-schema` violation. Every other schema is
//! governed.
//!
//! # Rules
//! See [`Rule`]; each variant documents what it checks and the heuristics it uses.

mod rules;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_naming;
#[cfg(test)]
mod tests_report;
pub mod words;

use std::fmt;

use serde::{Deserialize, Serialize};

/// The first approved schema set (seed 001 §15); any other schema must pass the creation test.
pub const APPROVED_SCHEMAS: [&str; 10] =
    ["core", "qieos", "qisystem", "qinexus", "qiaccess", "qilife", "qiconnect", "qiserver", "qivault", "staging"];

/// The creation-test criteria of seed 001 §5.2, as recorded in `qieos.schemas.creation_criteria`.
pub const CREATION_CRITERIA: [&str; 8] = [
    "own_lifecycle",
    "own_permissions",
    "many_tables",
    "independent_logic",
    "external_integrations",
    "sensitive_boundaries",
    "separate_identity",
    "messy_if_merged",
];

/// How many distinct creation criteria a schema outside the approved set must meet (§5.2).
pub const MIN_CREATION_CRITERIA: usize = 3;

/// The metadata columns of seed 001 §13, required on canonical tables unless waived.
pub const METADATA_COLUMNS: [&str; 11] = [
    "id",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "status",
    "source_system",
    "source_file_id",
    "import_batch_id",
    "sensitivity_level",
    "notes",
];

/// The columns every staging table must have (seed 001 §11).
pub const STAGING_COLUMNS: [&str; 6] =
    ["import_batch_id", "source_file_id", "row_number", "raw_payload", "review_status", "created_at"];

/// The one table allowed in `public`: sqlx's migration ledger.
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// What the store read: the catalog side (what exists) and the registry side (what is declared).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every schema in the database (`pg_namespace`), system ones included or not.
    pub catalog_schemas: Vec<String>,
    /// Ordinary and partitioned tables (`pg_class` relkind `r`/`p`, partitions excluded).
    pub catalog_tables: Vec<CatalogTable>,
    /// `qieos.schemas`.
    pub registry_schemas: Vec<RegistrySchema>,
    /// `qieos.tables`, with the schema name resolved.
    pub registry_tables: Vec<RegistryTable>,
    /// `qieos.field_usages`.
    pub registry_columns: Vec<RegistryColumn>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTable {
    pub schema: String,
    pub name: String,
    /// In `attnum` order.
    pub columns: Vec<CatalogColumn>,
    /// `pg_class.relrowsecurity`.
    pub rls_enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogColumn {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, e.g. `timestamp with time zone`.
    pub data_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrySchema {
    pub name: String,
    pub approved: bool,
    pub creation_criteria: Vec<String>,
    pub sensitivity: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryTable {
    pub schema: String,
    pub name: String,
    /// `proposed`, `active`, `deprecated` or `retired`. A `retired` row records a table that was
    /// removed on purpose, so it is never an orphan.
    #[serde(default = "default_status")]
    pub status: String,
    pub sensitivity: Option<String>,
    pub source_of_truth: Option<String>,
    pub naming_exception_reason: Option<String>,
    pub metadata_waiver_reason: Option<String>,
}

fn default_status() -> String {
    "active".to_owned()
}

/// One `qieos.field_usages` row: a column the registry says exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryColumn {
    pub schema: String,
    pub table: String,
    pub column: String,
}

/// A governance rule. Serialised (and displayed) as the stable kebab-case name scripts match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// A table exists in a governed schema but has no `qieos.tables` row.
    UnregisteredTable,
    /// A column of a registered table has no `qieos.field_usages` row. (Columns of unregistered
    /// tables are covered by `unregistered-table` and not repeated.)
    UnregisteredColumn,
    /// A `qieos.tables` row (not `retired`) whose table no longer exists.
    OrphanRegistryTable,
    /// A `qieos.field_usages` row whose column no longer exists (rows of a table already reported
    /// by `orphan-registry-table`, or of a `retired` table, are not repeated).
    OrphanRegistryColumn,
    /// A schema outside the approved set (§15) without a `qieos.schemas` row recording at least
    /// three distinct valid creation criteria (§5.2). `approved = true` alone does not pass.
    UnapprovedSchema,
    /// A schema, table or column name that is not lowercase snake_case (`^[a-z][a-z0-9_]*$`).
    Naming,
    /// A table whose last word is not plural (§3.2), with no `naming_exception_reason`; see
    /// [`words::is_plural`] for the heuristic.
    SingularTableName,
    /// A registered table (or schema) without a sensitivity level (§9).
    MissingSensitivity,
    /// A registered table without a source-of-truth policy (§8).
    MissingSourceOfTruth,
    /// A canonical table missing §13 metadata columns without a `metadata_waiver_reason`.
    CanonicalMetadata,
    /// A table in schema `staging`, or with policy `staging`, missing a §11 column.
    StagingColumns,
    /// A table or column outside `qivault` whose name says it holds credentials (§14.3); see
    /// [`words::secret_marker`].
    PlaintextSecret,
    /// A table or column named after a file format or location (`csv`, `json`, `xlsx`, `sheet`
    /// as a word), or a table outside `staging` named like a raw import (`*_import`,
    /// `*_imports`, `*_raw`) (§14.2, §14.5).
    LocationBasedName,
    /// A table with a `tenant_id` column but row-level security disabled.
    TenantRls,
    /// A table in `public` other than `_sqlx_migrations`.
    PublicSchema,
}

impl Rule {
    pub const ALL: [Rule; 15] = [
        Rule::UnregisteredTable,
        Rule::UnregisteredColumn,
        Rule::OrphanRegistryTable,
        Rule::OrphanRegistryColumn,
        Rule::UnapprovedSchema,
        Rule::Naming,
        Rule::SingularTableName,
        Rule::MissingSensitivity,
        Rule::MissingSourceOfTruth,
        Rule::CanonicalMetadata,
        Rule::StagingColumns,
        Rule::PlaintextSecret,
        Rule::LocationBasedName,
        Rule::TenantRls,
        Rule::PublicSchema,
    ];

    /// The stable name, identical to the serialised form.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::UnregisteredTable => "unregistered-table",
            Rule::UnregisteredColumn => "unregistered-column",
            Rule::OrphanRegistryTable => "orphan-registry-table",
            Rule::OrphanRegistryColumn => "orphan-registry-column",
            Rule::UnapprovedSchema => "unapproved-schema",
            Rule::Naming => "naming",
            Rule::SingularTableName => "singular-table-name",
            Rule::MissingSensitivity => "missing-sensitivity",
            Rule::MissingSourceOfTruth => "missing-source-of-truth",
            Rule::CanonicalMetadata => "canonical-metadata",
            Rule::StagingColumns => "staging-columns",
            Rule::PlaintextSecret => "plaintext-secret",
            Rule::LocationBasedName => "location-based-name",
            Rule::TenantRls => "tenant-rls",
            Rule::PublicSchema => "public-schema",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// `schema`, `schema.table` or `schema.table.column`.
    pub subject: String,
    pub rule: Rule,
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.subject, self.rule, self.explanation)
    }
}

/// Every violation in the snapshot, sorted by subject, then rule, then explanation.
pub fn check(s: &Snapshot) -> Vec<Violation> {
    let mut out = rules::run(s);
    out.sort_by(|a, b| {
        (a.subject.as_str(), a.rule.as_str(), a.explanation.as_str()).cmp(&(
            b.subject.as_str(),
            b.rule.as_str(),
            b.explanation.as_str(),
        ))
    });
    out.dedup();
    out
}

/// True for PostgreSQL's own schemas, which governance never looks at.
pub fn is_system_schema(name: &str) -> bool {
    name.starts_with("pg_") || name == "information_schema"
}

/// True for the schemas whose tables every rule applies to: all but `public` and system ones.
pub fn is_governed_schema(name: &str) -> bool {
    !is_system_schema(name) && name != "public"
}

/// The result of a check, as `spine governance check` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Tables in governed schemas (`public` and system schemas excluded).
    pub tables_checked: usize,
    /// Columns of those tables.
    pub columns_checked: usize,
}

impl Report {
    pub fn from_snapshot(s: &Snapshot) -> Report {
        let governed = s.catalog_tables.iter().filter(|t| is_governed_schema(&t.schema));
        let (tables, columns) = governed.fold((0, 0), |(t, c), table| (t + 1, c + table.columns.len()));
        Report { violations: check(s), tables_checked: tables, columns_checked: columns }
    }

    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// One line per violation, then the summary line (`0 violations in 31 tables, 362 columns`).
    /// Lines are separated by `\n`; there is no trailing newline.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        for v in &self.violations {
            text.push_str(&v.to_string());
            text.push('\n');
        }
        let n = self.violations.len();
        text.push_str(&format!(
            "{n} violation{} in {} table{}, {} column{}",
            plural_s(n),
            self.tables_checked,
            plural_s(self.tables_checked),
            self.columns_checked,
            plural_s(self.columns_checked),
        ));
        text
    }
}

fn plural_s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
