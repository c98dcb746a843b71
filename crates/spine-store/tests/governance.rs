//! `spine governance check` against a real PostgreSQL: the migrated database is clean, and each
//! rule fires, alone, on a deliberately bad object.

use spine_core::governance::{Report, Rule, Violation, check};
use spine_store::governance::snapshot;
use sqlx::PgPool;

async fn violations(pool: &PgPool) -> Vec<Violation> {
    check(&snapshot(pool).await.expect("snapshot"))
}

async fn exec(pool: &PgPool, sql: &'static str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `sql` on a fresh migrated database and asserts the check finds exactly `expected`.
async fn expect(sql: &'static str, expected: &[(&str, Rule)]) -> Vec<Violation> {
    let db = spine_testkit::test_db().await;
    exec(&db.pool, sql).await;
    let found = violations(&db.pool).await;
    let pairs: Vec<(&str, Rule)> = found.iter().map(|v| (v.subject.as_str(), v.rule)).collect();
    assert_eq!(pairs, expected, "after {sql}:\n{}", lines(&found));
    found
}

fn lines(vs: &[Violation]) -> String {
    vs.iter().map(|v| format!("  {v}\n")).collect()
}

#[tokio::test]
async fn migrated_database_has_no_violations() {
    let db = spine_testkit::test_db().await;
    let snap = snapshot(&db.pool).await.unwrap();
    let report = Report::from_snapshot(&snap);
    assert!(report.is_clean(), "the migrations violate governance:\n{}", report.render_text());
    assert!(report.tables_checked >= 31, "{}", report.render_text());
    assert!(snap.registry_tables.len() >= 31);
    let tenants = snap.catalog_tables.iter().find(|t| t.schema == "core" && t.name == "tenants");
    let tenants = tenants.expect("core.tenants in the catalog");
    assert!(tenants.rls_enabled);
    let created = tenants.columns.iter().find(|c| c.name == "created_at").unwrap();
    assert_eq!(created.data_type, "timestamp with time zone");
    assert!(snap.catalog_tables.iter().any(|t| t.schema == "public" && t.name == "_sqlx_migrations"));
}

#[tokio::test]
async fn missing_registry_reads_as_empty() {
    // Without the registry tables (as on a fresh database) everything is unregistered.
    let db = spine_testkit::test_db().await;
    exec(&db.pool, "ALTER SCHEMA qieos RENAME TO qieos_moved").await;
    let snap = snapshot(&db.pool).await.unwrap();
    assert!(snap.registry_schemas.is_empty() && snap.registry_tables.is_empty());
    assert!(snap.registry_columns.is_empty());
    let found = check(&snap);
    assert!(found.iter().any(|v| v.subject == "core.tenants" && v.rule == Rule::UnregisteredTable));
    assert!(found.iter().all(|v| matches!(v.rule, Rule::UnregisteredTable | Rule::UnapprovedSchema)));
}

#[tokio::test]
async fn unregistered_singular_table() {
    expect(
        "CREATE TABLE core.widget (id uuid PRIMARY KEY)",
        &[("core.widget", Rule::SingularTableName), ("core.widget", Rule::UnregisteredTable)],
    )
    .await;
}

#[tokio::test]
async fn unregistered_table_partitions_governed_through_parent() {
    expect(
        "CREATE TABLE qilife.events (id uuid, occurred_on date) PARTITION BY RANGE (occurred_on);
         CREATE TABLE qilife.events_2024 PARTITION OF qilife.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
        &[("qilife.events", Rule::UnregisteredTable)],
    )
    .await;
}

#[tokio::test]
async fn unregistered_column() {
    expect("ALTER TABLE qiserver.hosts ADD COLUMN rack text", &[("qiserver.hosts.rack", Rule::UnregisteredColumn)])
        .await;
}

#[tokio::test]
async fn orphan_registry_table() {
    expect(
        "CREATE TABLE qiserver.racks (id uuid PRIMARY KEY, name text, created_at timestamptz);
         SELECT qieos.register_table('qiserver', 'racks', 'Racks.', 'qiserver', 'internal', 'runtime');
         DROP TABLE qiserver.racks;",
        &[("qiserver.racks", Rule::OrphanRegistryTable)],
    )
    .await;
}

#[tokio::test]
async fn orphan_registry_column() {
    expect("ALTER TABLE qiserver.hosts DROP COLUMN os_name", &[("qiserver.hosts.os_name", Rule::OrphanRegistryColumn)])
        .await;
}

#[tokio::test]
async fn unapproved_schema() {
    expect("CREATE SCHEMA docker", &[("docker", Rule::UnapprovedSchema)]).await;
    let found = expect(
        "CREATE SCHEMA finance;
         SELECT qieos.register_schema('finance', 'finance', 'Money.', 'sensitive', false,
                                      ARRAY['own_lifecycle', 'many_tables', 'lots_of_money']);",
        &[("finance", Rule::UnapprovedSchema)],
    )
    .await;
    assert!(found[0].explanation.contains("lots_of_money"), "{}", found[0]);
    expect(
        "CREATE SCHEMA finance;
         SELECT qieos.register_schema('finance', 'finance', 'Money.', 'sensitive', false,
                ARRAY['own_lifecycle', 'many_tables', 'sensitive_boundaries']);",
        &[],
    )
    .await;
}

#[tokio::test]
async fn naming() {
    expect(
        r#"CREATE TABLE core."Widgets" (id uuid PRIMARY KEY, "createdAt" timestamptz);
           SELECT qieos.register_table('core', 'Widgets', 'Widgets.', 'core', 'internal', 'runtime',
                                       '{"createdAt": "When."}');"#,
        &[("core.Widgets", Rule::Naming), ("core.Widgets.createdAt", Rule::Naming)],
    )
    .await;
}

#[tokio::test]
async fn singular_table_name_unless_excepted() {
    expect(
        "CREATE TABLE qilife.timeline (id uuid PRIMARY KEY, created_at timestamptz);
         SELECT qieos.register_table('qilife', 'timeline', 'The timeline.', 'qilife', 'sensitive', 'runtime');",
        &[("qilife.timeline", Rule::SingularTableName)],
    )
    .await;
    expect(
        "CREATE TABLE qilife.timeline (id uuid PRIMARY KEY, created_at timestamptz);
         SELECT qieos.register_table('qilife', 'timeline', 'The timeline.', 'qilife', 'sensitive', 'runtime',
                                     '{}', 'One timeline per system.');",
        &[],
    )
    .await;
}

#[tokio::test]
async fn missing_sensitivity() {
    expect(
        "CREATE TABLE qiserver.racks (id uuid PRIMARY KEY, name text, created_at timestamptz);
         SELECT qieos.register_table('qiserver', 'racks', 'Racks.', 'qiserver', NULL, 'runtime');",
        &[("qiserver.racks", Rule::MissingSensitivity)],
    )
    .await;
}

#[tokio::test]
async fn missing_source_of_truth() {
    expect(
        "CREATE TABLE qiserver.racks (id uuid PRIMARY KEY, name text, created_at timestamptz);
         SELECT qieos.register_table('qiserver', 'racks', 'Racks.', 'qiserver', 'internal', NULL);",
        &[("qiserver.racks", Rule::MissingSourceOfTruth)],
    )
    .await;
}

#[tokio::test]
async fn canonical_metadata() {
    let found = expect(
        "CREATE TABLE qiserver.racks (id uuid PRIMARY KEY, name text, created_at timestamptz, notes text);
         SELECT qieos.register_table('qiserver', 'racks', 'Racks.', 'qiserver', 'internal', 'canonical');",
        &[("qiserver.racks", Rule::CanonicalMetadata)],
    )
    .await;
    assert!(
        found[0].explanation.contains(
            "updated_at, created_by, updated_by, status, source_system, source_file_id, import_batch_id, sensitivity_level;"
        ),
        "{}",
        found[0]
    );
}

#[tokio::test]
async fn staging_columns() {
    let found = expect(
        "CREATE TABLE staging.zoho_contacts_raw (
             id uuid PRIMARY KEY, tenant_id uuid NOT NULL, import_batch_id uuid NOT NULL,
             source_file_id uuid NOT NULL, raw_payload jsonb, review_status text, created_at timestamptz);
         SELECT qieos.register_table('staging', 'zoho_contacts_raw', 'Zoho contacts awaiting review.',
                                     'staging', 'private', 'staging');",
        &[("staging.zoho_contacts_raw", Rule::StagingColumns)],
    )
    .await;
    assert!(found[0].explanation.ends_with("row_number"), "{}", found[0]);
}

#[tokio::test]
async fn plaintext_secret() {
    expect(
        r#"CREATE TABLE qiconnect.api_keys (id uuid PRIMARY KEY, api_key text);
           SELECT qieos.register_table('qiconnect', 'api_keys', 'Keys.', 'qiconnect', 'secret', 'runtime',
                                       '{"api_key": "The key."}');
           CREATE TABLE qiconnect.api_token_refs (id uuid PRIMARY KEY, token_ref text);
           SELECT qieos.register_table('qiconnect', 'api_token_refs', 'Where tokens are kept.', 'qiconnect',
                                       'sensitive', 'runtime', '{"token_ref": "Reference into qivault."}');"#,
        &[("qiconnect.api_keys", Rule::PlaintextSecret), ("qiconnect.api_keys.api_key", Rule::PlaintextSecret)],
    )
    .await;
}

#[tokio::test]
async fn location_based_name() {
    expect(
        "CREATE TABLE qiserver.csv_contacts (id uuid PRIMARY KEY, name text);
         SELECT qieos.register_table('qiserver', 'csv_contacts', 'Contacts from a CSV.', 'qiserver', 'private', 'runtime');
         CREATE TABLE core.zoho_contacts_import (id uuid PRIMARY KEY, name text);
         SELECT qieos.register_table('core', 'zoho_contacts_import', 'Zoho contacts.', 'core', 'private', 'imported');",
        &[
            ("core.zoho_contacts_import", Rule::LocationBasedName),
            ("qiserver.csv_contacts", Rule::LocationBasedName),
        ],
    )
    .await;
}

#[tokio::test]
async fn tenant_rls() {
    expect(
        "CREATE TABLE qilife.tasks (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, created_at timestamptz);
         SELECT qieos.register_table('qilife', 'tasks', 'Tasks.', 'qilife', 'sensitive', 'runtime');
         ALTER TABLE qilife.tasks DISABLE ROW LEVEL SECURITY;",
        &[("qilife.tasks", Rule::TenantRls)],
    )
    .await;
}

#[tokio::test]
async fn public_schema() {
    expect("CREATE TABLE public.things (id integer)", &[("public.things", Rule::PublicSchema)]).await;
}
