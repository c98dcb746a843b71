//! The integration law, enforced by PostgreSQL: an ingest transaction (role spine_ingest) can
//! capture, register, stage and enqueue, and cannot touch canonical tables.

use serde_json::json;
use spine_core::ids::TenantId;
use spine_store::Store;
use spine_store::queue::{self, NewJob};

async fn setup() -> (spine_testkit::TestDb, Store, TenantId) {
    let db = spine_testkit::test_db().await;
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'law', 'Law')")
        .bind(t.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let store = Store::new(db.pool.clone());
    (db, store, t)
}

fn sqlstate(e: sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_else(|| format!("{e}"))
}

/// What ingress does: record an arrival and enqueue the job that continues it.
async fn capture_and_enqueue(tx: &mut spine_store::TenantTx, t: TenantId) {
    sqlx::query(
        "INSERT INTO qiaccess.capture_events (tenant_id, ingress_kind, route, captured_by) VALUES ($1, 'upload', '/v1/files', 'key:test')",
    )
    .bind(t.as_uuid())
    .execute(tx.conn())
    .await
    .unwrap();
    queue::enqueue(tx.conn(), &NewJob::new(t, "spine.noop", json!({}))).await.unwrap();
}

#[tokio::test]
async fn ingest_cannot_write_canonical_tables() {
    let (_db, store, t) = setup().await;
    for sql in [
        "INSERT INTO core.entities (tenant_id, entity_kind) VALUES ($1, 'person')",
        "INSERT INTO core.people (tenant_id, id, full_name) VALUES ($1, gen_random_uuid(), 'Ada')",
        "UPDATE core.people SET full_name = 'x' WHERE tenant_id = $1",
        "DELETE FROM core.identifiers WHERE tenant_id = $1",
        "SELECT count(*) FROM core.people WHERE tenant_id = $1",
    ] {
        let mut tx = store.ingest_tx(t).await.unwrap();
        let err = sqlx::query(sql).bind(t.as_uuid()).execute(tx.conn()).await.unwrap_err();
        assert_eq!(sqlstate(err), "42501", "{sql}");
    }
}

#[tokio::test]
async fn ingest_can_capture_and_enqueue_for_its_tenant_only() {
    let (db, store, t) = setup().await;
    let mut tx = store.ingest_tx(t).await.unwrap();
    capture_and_enqueue(&mut tx, t).await;
    // Another tenant's row is refused by RLS, as for the app role.
    let err = sqlx::query(
        "INSERT INTO qiaccess.capture_events (tenant_id, ingress_kind, route, captured_by) VALUES (gen_random_uuid(), 'upload', '/', 'key:test')",
    )
    .execute(tx.conn())
    .await
    .unwrap_err();
    assert_eq!(sqlstate(err), "42501");
    drop(tx);

    let mut tx = store.ingest_tx(t).await.unwrap();
    capture_and_enqueue(&mut tx, t).await;
    tx.commit().await.unwrap();
    let (captures, jobs): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM qiaccess.capture_events), (SELECT count(*) FROM qiserver.jobs)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((captures, jobs), (1, 1), "the rolled-back transaction left nothing");
}
