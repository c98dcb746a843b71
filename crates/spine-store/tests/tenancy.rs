//! The RLS proof: with raw SQL under the `spine_app` role (the role requests and workers use),
//! no tenant set → nothing visible; tenant A set → no row of tenant B can be read, updated,
//! deleted or inserted, in every tenant-owned table the catalog knows.

use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

struct Fixture {
    a: Uuid,
    b: Uuid,
    b_entity: Uuid,
    a_entity: Uuid,
}

async fn seed(pool: &sqlx::PgPool) -> Fixture {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, slug) in [(a, "tenant-a"), (b, "tenant-b")] {
        sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, $2)")
            .bind(id)
            .bind(slug)
            .execute(pool)
            .await
            .unwrap();
    }
    let mut ents = Vec::new();
    for t in [a, b] {
        let e = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO core.entities (id, tenant_id, entity_kind, display_name) VALUES ($1, $2, 'person', 'P')",
        )
        .bind(e)
        .bind(t)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO core.people (id, tenant_id, full_name) VALUES ($1, $2, 'P')")
            .bind(e)
            .bind(t)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO qinexus.sources (tenant_id, source_key, source_kind, display_name) VALUES ($1, 'upload', 'upload', 'Upload')")
            .bind(t)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO qivault.api_keys (tenant_id, name, key_prefix, key_hash, scopes) VALUES ($1, 'k', $2, $3, '{admin}')")
            .bind(t)
            .bind(format!("sak_{}", &t.simple().to_string()[20..32]))
            .bind(vec![7u8; 32])
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO core.audit_events (tenant_id, actor_kind, action) VALUES ($1, 'system', 'test.seed')")
            .bind(t)
            .execute(pool)
            .await
            .unwrap();
        ents.push(e);
    }
    Fixture { a, b, a_entity: ents[0], b_entity: ents[1] }
}

/// Every table with a tenant_id column, from the live catalog.
async fn tenant_tables(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect()
}

async fn as_app(db: &spine_testkit::TestDb, tenant: Option<Uuid>) -> PgConnection {
    let mut c = PgConnection::connect_with(&db.options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    sqlx::query("SET LOCAL ROLE spine_app").execute(&mut c).await.unwrap();
    if let Some(t) = tenant {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL spine.tenant_id = '{t}'"))).execute(&mut c).await.unwrap();
    }
    c
}

fn sqlstate(e: sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("expected a database error, got {other}"),
    }
}

#[tokio::test]
async fn the_app_role_cannot_bypass_rls() {
    let db = spine_testkit::test_db().await;
    let row = sqlx::query("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'spine_app'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!row.get::<bool, _>(0), "spine_app must not be a superuser");
    assert!(!row.get::<bool, _>(1), "spine_app must not bypass RLS");
    assert!(!row.get::<bool, _>(2), "spine_app must not log in by itself");
}

#[tokio::test]
async fn without_a_tenant_nothing_is_visible() {
    let db = spine_testkit::test_db().await;
    seed(&db.pool).await;
    let tables = tenant_tables(&db.pool).await;
    assert!(tables.len() >= 12, "expected the tenant-owned tables, found {tables:?}");
    let mut c = as_app(&db, None).await;
    for t in &tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 0, "{t} shows {n} rows with no tenant set");
    }
    for t in ["core.tenants", "core.users"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 0, "{t} visible without a tenant");
    }
}

#[tokio::test]
async fn tenant_a_cannot_touch_tenant_b() {
    let db = spine_testkit::test_db().await;
    let f = seed(&db.pool).await;
    let tables = tenant_tables(&db.pool).await;
    let mut c = as_app(&db, Some(f.a)).await;
    // Read: every tenant-owned table shows only A's rows.
    for t in &tables {
        let other: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t} WHERE tenant_id <> $1")))
                .bind(f.a)
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(other, 0, "{t} leaks another tenant's rows");
    }
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM core.tenants").fetch_all(&mut c).await.unwrap();
    assert_eq!(seen, vec![f.a]);
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM core.entities").fetch_one(&mut c).await.unwrap();
    assert_eq!(mine, 1);
    // Update and delete of B's row by id: no effect.
    let upd = sqlx::query("UPDATE core.entities SET display_name = 'pwned' WHERE id = $1")
        .bind(f.b_entity)
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(upd.rows_affected(), 0);
    let del = sqlx::query("DELETE FROM core.people WHERE id = $1").bind(f.b_entity).execute(&mut c).await.unwrap();
    assert_eq!(del.rows_affected(), 0);
    // Insert into B: refused by the policy (42501).
    sqlx::query("SAVEPOINT s").execute(&mut c).await.unwrap();
    let err = sqlx::query("INSERT INTO core.entities (tenant_id, entity_kind, display_name) VALUES ($1, 'other', 'x')")
        .bind(f.b)
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(err), "42501");
    sqlx::query("ROLLBACK TO SAVEPOINT s").execute(&mut c).await.unwrap();
    // Moving one of A's rows into B: refused too.
    let err = sqlx::query("UPDATE core.entities SET tenant_id = $1 WHERE id = $2")
        .bind(f.b)
        .bind(f.a_entity)
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(err), "42501");
    drop(c);
    // Nothing of B's changed.
    let name: String = sqlx::query_scalar("SELECT display_name FROM core.entities WHERE id = $1")
        .bind(f.b_entity)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(name, "P");
    let people: i64 = sqlx::query_scalar("SELECT count(*) FROM core.people").fetch_one(&db.pool).await.unwrap();
    assert_eq!(people, 2);
}

#[tokio::test]
async fn a_reference_cannot_cross_tenants() {
    let db = spine_testkit::test_db().await;
    let f = seed(&db.pool).await;
    let mut c = as_app(&db, Some(f.a)).await;
    // A's identifier pointing at B's entity id: the composite foreign key refuses it (23503),
    // although FK checks themselves bypass RLS.
    let err = sqlx::query(
        "INSERT INTO core.identifiers (tenant_id, entity_id, identifier_kind, value, normalized_value) VALUES ($1, $2, 'email', 'x@y.org', 'x@y.org')",
    )
    .bind(f.a)
    .bind(f.b_entity)
    .execute(&mut c)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(err), "23503");
}

#[tokio::test]
async fn audit_is_append_only_for_the_app_role() {
    let db = spine_testkit::test_db().await;
    let f = seed(&db.pool).await;
    let mut c = as_app(&db, Some(f.a)).await;
    sqlx::query("INSERT INTO core.audit_events (tenant_id, actor_kind, action) VALUES ($1, 'system', 'test.insert')")
        .bind(f.a)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("SAVEPOINT s").execute(&mut c).await.unwrap();
    let err = sqlx::query("UPDATE core.audit_events SET action = 'test.changed'").execute(&mut c).await.unwrap_err();
    assert_eq!(sqlstate(err), "42501");
    sqlx::query("ROLLBACK TO SAVEPOINT s").execute(&mut c).await.unwrap();
    let err = sqlx::query("DELETE FROM core.audit_events").execute(&mut c).await.unwrap_err();
    assert_eq!(sqlstate(err), "42501");
}

#[tokio::test]
async fn credential_tables_are_closed_to_the_app_role() {
    let db = spine_testkit::test_db().await;
    let f = seed(&db.pool).await;
    for t in ["qivault.password_credentials", "qivault.service_keys"] {
        let mut c = as_app(&db, Some(f.a)).await;
        let err = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t}"))).fetch_all(&mut c).await.unwrap_err();
        assert_eq!(sqlstate(err), "42501", "{t} readable by spine_app");
    }
}

#[tokio::test]
async fn store_tenant_tx_is_scoped() {
    let db = spine_testkit::test_db().await;
    let f = seed(&db.pool).await;
    let store = spine_store::Store::new(db.pool.clone());
    let mut tx = store.tenant_tx(spine_core::ids::TenantId(f.b)).await.unwrap();
    let keys = spine_store::repos::keys::list_api_keys(&mut tx).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys.iter().all(|k| k.tenant_id == f.b));
    let t = spine_store::repos::tenants::current(&mut tx).await.unwrap();
    assert_eq!(t.id, f.b);
}
