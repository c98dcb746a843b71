//! Shared fixtures, and the registry, schema, staging, RLS and public rules. Naming, secrets and
//! location rules are in `tests_naming.rs`; rule names and the report in `tests_report.rs`.

use super::*;

/// A small, fully compliant database: every approved schema, registered with a sensitivity.
pub(super) fn db() -> Snapshot {
    let mut s = Snapshot::default();
    for name in APPROVED_SCHEMAS.iter().chain(["public", "pg_catalog", "information_schema"].iter()) {
        s.catalog_schemas.push((*name).to_owned());
    }
    for name in APPROVED_SCHEMAS {
        s.registry_schemas.push(RegistrySchema {
            name: name.to_owned(),
            approved: true,
            creation_criteria: vec![],
            sensitivity: Some("internal".to_owned()),
        });
    }
    s.catalog_tables.push(table("public", MIGRATIONS_TABLE, &["version"], false));
    s.catalog_tables.push(table("pg_catalog", "pg_class", &["oid", "relname"], false));
    add(&mut s, table("core", "people", &canonical_cols(), true), Some("canonical"));
    add(&mut s, table("staging", "import_rows", &staging_cols(), true), Some("staging"));
    add(&mut s, table("qivault", "password_credentials", &["user_id", "password_hash"], false), Some("runtime"));
    add(&mut s, table("qiserver", "hosts", &["id", "hostname"], false), Some("runtime"));
    s
}

pub(super) fn canonical_cols() -> Vec<&'static str> {
    let mut cols = vec!["tenant_id", "full_name"];
    cols.extend(METADATA_COLUMNS);
    cols
}

pub(super) fn staging_cols() -> Vec<&'static str> {
    let mut cols = vec!["id", "tenant_id"];
    cols.extend(STAGING_COLUMNS);
    cols
}

pub(super) fn table(schema: &str, name: &str, cols: &[&str], rls: bool) -> CatalogTable {
    CatalogTable {
        schema: schema.to_owned(),
        name: name.to_owned(),
        columns: cols.iter().map(|c| CatalogColumn { name: (*c).to_owned(), data_type: "text".to_owned() }).collect(),
        rls_enabled: rls,
    }
}

pub(super) fn reg(schema: &str, name: &str, policy: Option<&str>) -> RegistryTable {
    RegistryTable {
        schema: schema.to_owned(),
        name: name.to_owned(),
        status: "active".to_owned(),
        sensitivity: Some("private".to_owned()),
        source_of_truth: policy.map(str::to_owned),
        naming_exception_reason: None,
        metadata_waiver_reason: None,
    }
}

/// Adds a catalog table and registers it with every column, as qieos.register_table does.
pub(super) fn add(s: &mut Snapshot, t: CatalogTable, policy: Option<&str>) {
    s.registry_tables.push(reg(&t.schema, &t.name, policy));
    for c in &t.columns {
        s.registry_columns.push(RegistryColumn {
            schema: t.schema.clone(),
            table: t.name.clone(),
            column: c.name.clone(),
        });
    }
    s.catalog_tables.push(t);
}

pub(super) fn registry_mut<'a>(s: &'a mut Snapshot, schema: &str, name: &str) -> &'a mut RegistryTable {
    s.registry_tables.iter_mut().find(|r| r.schema == schema && r.name == name).expect("registered")
}

/// Every (subject, rule) found, in check order.
pub(super) fn found(s: &Snapshot) -> Vec<(String, Rule)> {
    check(s).into_iter().map(|v| (v.subject, v.rule)).collect()
}

pub(super) fn pair(subject: &str, rule: Rule) -> (String, Rule) {
    (subject.to_owned(), rule)
}

pub(super) fn explanation(s: &Snapshot, subject: &str, rule: Rule) -> String {
    check(s)
        .into_iter()
        .find(|v| v.subject == subject && v.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} for {subject}"))
        .explanation
}

#[test]
fn compliant_database_has_no_violations() {
    assert_eq!(check(&db()), vec![]);
}

#[test]
fn unregistered_table() {
    let mut s = db();
    s.catalog_tables.push(table("core", "widgets", &["id"], false));
    assert_eq!(found(&s), vec![pair("core.widgets", Rule::UnregisteredTable)]);
}

#[test]
fn unregistered_column() {
    let mut s = db();
    s.catalog_tables[2].columns.push(CatalogColumn { name: "nickname".into(), data_type: "text".into() });
    assert_eq!(s.catalog_tables[2].name, "people");
    assert_eq!(found(&s), vec![pair("core.people.nickname", Rule::UnregisteredColumn)]);
}

#[test]
fn orphan_registry_table_and_its_columns_once() {
    let mut s = db();
    s.catalog_tables.retain(|t| t.name != "hosts");
    assert_eq!(found(&s), vec![pair("qiserver.hosts", Rule::OrphanRegistryTable)]);
    // A retired row records a deliberate removal.
    registry_mut(&mut s, "qiserver", "hosts").status = "retired".into();
    assert_eq!(found(&s), vec![]);
}

#[test]
fn orphan_registry_column() {
    let mut s = db();
    s.catalog_tables[5].columns.retain(|c| c.name != "hostname");
    assert_eq!(s.catalog_tables[5].name, "hosts");
    assert_eq!(found(&s), vec![pair("qiserver.hosts.hostname", Rule::OrphanRegistryColumn)]);
    // A usage whose table has neither a catalog table nor a registry row.
    let mut s = db();
    s.registry_columns.push(RegistryColumn { schema: "core".into(), table: "gone".into(), column: "x".into() });
    assert_eq!(found(&s), vec![pair("core.gone.x", Rule::OrphanRegistryColumn)]);
}

#[test]
fn unapproved_schema_without_registry_row() {
    let mut s = db();
    s.catalog_schemas.push("docker".into());
    assert_eq!(found(&s), vec![pair("docker", Rule::UnapprovedSchema)]);
    assert!(explanation(&s, "docker", Rule::UnapprovedSchema).contains("no qieos.schemas row"));
}

#[test]
fn unapproved_schema_counts_distinct_valid_criteria() {
    let mut s = db();
    s.catalog_schemas.push("finance".into());
    s.registry_schemas.push(RegistrySchema {
        name: "finance".into(),
        approved: true,
        creation_criteria: vec!["own_lifecycle".into(), "own_lifecycle".into(), "many_tables".into(), "is_cool".into()],
        sensitivity: Some("sensitive".into()),
    });
    assert_eq!(found(&s), vec![pair("finance", Rule::UnapprovedSchema)]);
    let why = explanation(&s, "finance", Rule::UnapprovedSchema);
    assert!(why.contains("records 2 valid (own_lifecycle, many_tables)"), "{why}");
    assert!(why.contains("is_cool"), "{why}");
    assert!(why.contains("approved = true"), "{why}");

    s.registry_schemas.last_mut().unwrap().creation_criteria.push("sensitive_boundaries".into());
    assert_eq!(found(&s), vec![]);
}

#[test]
fn approved_schemas_need_no_creation_test_and_system_schemas_are_ignored() {
    let mut s = db();
    s.registry_schemas.clear();
    s.registry_tables.clear();
    s.registry_columns.clear();
    s.catalog_tables.retain(|t| !is_governed_schema(&t.schema));
    s.catalog_schemas.extend(["pg_toast".into(), "pg_temp_3".into(), "pg_toast_temp_3".into()]);
    s.catalog_tables.push(table("pg_temp_3", "Scratch", &["tenant_id"], false));
    s.catalog_tables.push(table("information_schema", "sql_features", &["feature_id"], false));
    assert_eq!(found(&s), vec![]);
}

#[test]
fn missing_sensitivity_on_table_and_schema() {
    let mut s = db();
    registry_mut(&mut s, "qiserver", "hosts").sensitivity = None;
    s.registry_schemas.iter_mut().find(|r| r.name == "qilife").unwrap().sensitivity = None;
    assert_eq!(
        found(&s),
        vec![pair("qilife", Rule::MissingSensitivity), pair("qiserver.hosts", Rule::MissingSensitivity)]
    );
}

#[test]
fn missing_source_of_truth() {
    let mut s = db();
    registry_mut(&mut s, "qiserver", "hosts").source_of_truth = None;
    assert_eq!(found(&s), vec![pair("qiserver.hosts", Rule::MissingSourceOfTruth)]);
}

#[test]
fn canonical_metadata_names_missing_columns_unless_waived() {
    let mut s = db();
    registry_mut(&mut s, "qiserver", "hosts").source_of_truth = Some("canonical".into());
    assert_eq!(found(&s), vec![pair("qiserver.hosts", Rule::CanonicalMetadata)]);
    let why = explanation(&s, "qiserver.hosts", Rule::CanonicalMetadata);
    assert!(
        why.contains("created_at, updated_at, created_by, updated_by, status, source_system, source_file_id, import_batch_id, sensitivity_level, notes;"),
        "{why}"
    );
    assert!(!why.contains(" id,"), "{why}");
    registry_mut(&mut s, "qiserver", "hosts").metadata_waiver_reason = Some("runtime rows".into());
    assert_eq!(found(&s), vec![]);
}

#[test]
fn staging_columns_by_schema_and_by_policy() {
    let mut s = db();
    s.catalog_tables[3].columns.retain(|c| c.name != "row_number" && c.name != "raw_payload");
    assert_eq!(s.catalog_tables[3].name, "import_rows");
    s.registry_columns.retain(|c| c.column != "row_number" && c.column != "raw_payload");
    assert_eq!(found(&s), vec![pair("staging.import_rows", Rule::StagingColumns)]);
    assert!(explanation(&s, "staging.import_rows", Rule::StagingColumns).ends_with("row_number, raw_payload"));

    // An unregistered staging table is checked too.
    let mut s = db();
    s.catalog_tables.push(table("staging", "zoho_contacts_raw", &["id", "raw_payload"], false));
    assert_eq!(
        found(&s),
        vec![
            pair("staging.zoho_contacts_raw", Rule::StagingColumns),
            pair("staging.zoho_contacts_raw", Rule::UnregisteredTable),
        ]
    );

    // A staging-policy table outside the staging schema.
    let mut s = db();
    add(&mut s, table("qinexus", "pending_rows", &["id", "created_at"], false), Some("staging"));
    assert_eq!(found(&s), vec![pair("qinexus.pending_rows", Rule::StagingColumns)]);
}

#[test]
fn tenant_rls() {
    let mut s = db();
    add(&mut s, table("qilife", "tasks", &["id", "tenant_id"], false), Some("runtime"));
    assert_eq!(found(&s), vec![pair("qilife.tasks", Rule::TenantRls)]);
    s.catalog_tables.last_mut().unwrap().rls_enabled = true;
    assert_eq!(found(&s), vec![]);
}

#[test]
fn public_schema() {
    let mut s = db();
    s.catalog_tables.push(table("public", "things", &["Id", "api_key", "tenant_id"], false));
    assert_eq!(found(&s), vec![pair("public.things", Rule::PublicSchema)]);
}
