//! The rules themselves. Each function appends what it finds; [`super::check`] sorts.

use std::collections::{HashMap, HashSet};

use super::words;
use super::{
    APPROVED_SCHEMAS, CREATION_CRITERIA, CatalogTable, METADATA_COLUMNS, MIGRATIONS_TABLE, MIN_CREATION_CRITERIA,
    RegistryTable, Rule, STAGING_COLUMNS, Snapshot, Violation, is_governed_schema, is_system_schema,
};

const VAULT_SCHEMA: &str = "qivault";
const STAGING_SCHEMA: &str = "staging";
const STAGING_POLICY: &str = "staging";
const CANONICAL_POLICY: &str = "canonical";
const RETIRED: &str = "retired";

struct Out(Vec<Violation>);

impl Out {
    fn push(&mut self, subject: impl Into<String>, rule: Rule, explanation: impl Into<String>) {
        self.0.push(Violation { subject: subject.into(), rule, explanation: explanation.into() });
    }
}

pub(super) fn run(s: &Snapshot) -> Vec<Violation> {
    let mut out = Out(Vec::new());
    let registry: HashMap<(&str, &str), &RegistryTable> =
        s.registry_tables.iter().map(|t| ((t.schema.as_str(), t.name.as_str()), t)).collect();
    let usages: HashSet<(&str, &str, &str)> =
        s.registry_columns.iter().map(|u| (u.schema.as_str(), u.table.as_str(), u.column.as_str())).collect();

    for schema in &s.catalog_schemas {
        if is_governed_schema(schema) {
            schema_rules(s, schema, &mut out);
        }
    }
    for table in &s.catalog_tables {
        if table.schema == "public" {
            if table.name != MIGRATIONS_TABLE {
                out.push(
                    subject(table),
                    Rule::PublicSchema,
                    "tables belong in a governed schema (seed 001 §4, §15); public holds only _sqlx_migrations",
                );
            }
        } else if !is_system_schema(&table.schema) {
            let reg = registry.get(&(table.schema.as_str(), table.name.as_str())).copied();
            table_rules(table, reg, &usages, &mut out);
        }
    }
    orphans(s, &registry, &mut out);
    out.0
}

fn subject(t: &CatalogTable) -> String {
    format!("{}.{}", t.schema, t.name)
}

fn schema_rules(s: &Snapshot, schema: &str, out: &mut Out) {
    if !words::is_snake_case(schema) {
        out.push(schema, Rule::Naming, "schema names are lowercase snake_case (seed 001 §3.1)");
    }
    let row = s.registry_schemas.iter().find(|r| r.name == schema);
    if let Some(row) = row
        && row.sensitivity.is_none()
    {
        out.push(schema, Rule::MissingSensitivity, "qieos.schemas.sensitivity_level is not set (seed 001 §9)");
    }
    if APPROVED_SCHEMAS.contains(&schema) {
        return;
    }
    let test = "seed 001 §5.2 allows a schema outside the approved set (§15) only when at least \
                3 creation criteria hold";
    let Some(row) = row else {
        out.push(
            schema,
            Rule::UnapprovedSchema,
            format!("{test}; no qieos.schemas row records them (valid keys: {})", CREATION_CRITERIA.join(", ")),
        );
        return;
    };
    let mut valid: Vec<&str> = Vec::new();
    let mut invalid: Vec<&str> = Vec::new();
    for c in &row.creation_criteria {
        let list = if CREATION_CRITERIA.contains(&c.as_str()) { &mut valid } else { &mut invalid };
        if !list.contains(&c.as_str()) {
            list.push(c);
        }
    }
    if valid.len() >= MIN_CREATION_CRITERIA {
        return;
    }
    let mut why = format!(
        "{test}; qieos.schemas records {} valid ({})",
        valid.len(),
        if valid.is_empty() { "none".to_owned() } else { valid.join(", ") }
    );
    if !invalid.is_empty() {
        why.push_str(&format!(
            "; not counted, not creation criteria: {} (valid keys: {})",
            invalid.join(", "),
            CREATION_CRITERIA.join(", ")
        ));
    }
    if row.approved {
        why.push_str("; approved = true does not replace the creation test");
    }
    out.push(schema, Rule::UnapprovedSchema, why);
}

fn table_rules(t: &CatalogTable, reg: Option<&RegistryTable>, usages: &HashSet<(&str, &str, &str)>, out: &mut Out) {
    let subj = subject(t);
    let has = |col: &str| t.columns.iter().any(|c| c.name == col);

    // Naming (§3.2, §3.3).
    if !words::is_snake_case(&t.name) {
        out.push(&subj, Rule::Naming, "table names are lowercase snake_case (seed 001 §3.2)");
    }
    for c in &t.columns {
        if !words::is_snake_case(&c.name) {
            out.push(
                format!("{subj}.{}", c.name),
                Rule::Naming,
                "column names are lowercase snake_case (seed 001 §3.3)",
            );
        }
    }
    let excepted = reg.is_some_and(|r| r.naming_exception_reason.is_some());
    if !excepted && let Some(word) = words::last_word(&t.name).filter(|w| !words::is_plural(w)) {
        out.push(
            &subj,
            Rule::SingularTableName,
            format!(
                "table names are plural nouns (seed 001 §3.2) and `{word}` looks singular; \
                 rename or record qieos.tables.naming_exception_reason"
            ),
        );
    }

    // Registration (§7) and the registry's own declarations (§8, §9, §13).
    match reg {
        None => out.push(
            &subj,
            Rule::UnregisteredTable,
            "no qieos.tables row; register it with qieos.register_table (seed 001 §7.4)",
        ),
        Some(r) => {
            for c in &t.columns {
                if !usages.contains(&(t.schema.as_str(), t.name.as_str(), c.name.as_str())) {
                    out.push(
                        format!("{subj}.{}", c.name),
                        Rule::UnregisteredColumn,
                        "no qieos.field_usages row; re-run qieos.register_table for the table (seed 001 §7.2)",
                    );
                }
            }
            if r.sensitivity.is_none() {
                out.push(&subj, Rule::MissingSensitivity, "qieos.tables.sensitivity_level is not set (seed 001 §9)");
            }
            if r.source_of_truth.is_none() {
                out.push(
                    &subj,
                    Rule::MissingSourceOfTruth,
                    "qieos.tables.source_of_truth_policy is not set (seed 001 §8)",
                );
            }
            if r.source_of_truth.as_deref() == Some(CANONICAL_POLICY) && r.metadata_waiver_reason.is_none() {
                let missing: Vec<&str> = METADATA_COLUMNS.iter().copied().filter(|c| !has(c)).collect();
                if !missing.is_empty() {
                    out.push(
                        &subj,
                        Rule::CanonicalMetadata,
                        format!(
                            "canonical table lacks seed 001 §13 metadata columns {}; add them or \
                             record qieos.tables.metadata_waiver_reason",
                            missing.join(", ")
                        ),
                    );
                }
            }
        }
    }

    // Staging (§11).
    let staging_policy = reg.is_some_and(|r| r.source_of_truth.as_deref() == Some(STAGING_POLICY));
    if t.schema == STAGING_SCHEMA || staging_policy {
        let missing: Vec<&str> = STAGING_COLUMNS.iter().copied().filter(|c| !has(c)).collect();
        if !missing.is_empty() {
            out.push(
                &subj,
                Rule::StagingColumns,
                format!("staging table lacks seed 001 §11 columns {}", missing.join(", ")),
            );
        }
    }

    // Plaintext secrets (§14.3).
    if t.schema != VAULT_SCHEMA {
        let why = |m: &str| {
            format!(
                "the name contains `{m}`: credential material belongs in qivault (seed 001 §14.3); \
                 store a reference named *_ref, *_refs or *_id instead"
            )
        };
        if let Some(m) = words::secret_marker(&t.name) {
            out.push(&subj, Rule::PlaintextSecret, why(m));
        }
        for c in &t.columns {
            if let Some(m) = words::secret_marker(&c.name) {
                out.push(format!("{subj}.{}", c.name), Rule::PlaintextSecret, why(m));
            }
        }
    }

    // Location-based names and raw imports outside staging (§6, §14.2, §14.5).
    let why_location = |w: &str| {
        format!("`{w}` names a file format or location, not a meaning; ownership beats location (seed 001 §6, §14.2)")
    };
    if let Some(w) = words::location_word(&t.name) {
        out.push(&subj, Rule::LocationBasedName, why_location(w));
    }
    if t.schema != STAGING_SCHEMA
        && let Some(suffix) = words::raw_import_suffix(&t.name)
    {
        out.push(
            &subj,
            Rule::LocationBasedName,
            format!(
                "`*{suffix}` tables are raw imports, which belong in staging, not in a canonical schema (seed 001 §14.5)"
            ),
        );
    }
    for c in &t.columns {
        if let Some(w) = words::location_word(&c.name) {
            out.push(format!("{subj}.{}", c.name), Rule::LocationBasedName, why_location(w));
        }
    }

    // Tenant isolation.
    if has("tenant_id") && !t.rls_enabled {
        out.push(
            &subj,
            Rule::TenantRls,
            "the table has tenant_id but row-level security is disabled, so tenants are not isolated",
        );
    }
}

fn orphans(s: &Snapshot, registry: &HashMap<(&str, &str), &RegistryTable>, out: &mut Out) {
    let tables: HashMap<(&str, &str), &CatalogTable> =
        s.catalog_tables.iter().map(|t| ((t.schema.as_str(), t.name.as_str()), t)).collect();
    for r in &s.registry_tables {
        if r.status != RETIRED && !tables.contains_key(&(r.schema.as_str(), r.name.as_str())) {
            out.push(
                format!("{}.{}", r.schema, r.name),
                Rule::OrphanRegistryTable,
                "qieos.tables has a row for a table that does not exist; delete it or mark it retired",
            );
        }
    }
    for u in &s.registry_columns {
        let key = (u.schema.as_str(), u.table.as_str());
        let exists = match tables.get(&key) {
            Some(t) => t.columns.iter().any(|c| c.name == u.column),
            // The table is gone: reported once as orphan-registry-table, or retired on purpose.
            None if registry.contains_key(&key) => true,
            None => false,
        };
        if !exists {
            out.push(
                format!("{}.{}.{}", u.schema, u.table, u.column),
                Rule::OrphanRegistryColumn,
                "qieos.field_usages has a row for a column that does not exist; delete it",
            );
        }
    }
}
