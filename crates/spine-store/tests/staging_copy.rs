//! COPY loads into staging.import_rows on a real PostgreSQL, inside a tenant transaction (RLS
//! applies): rows and error rows land with their numbers and raw text, nothing lands on
//! rollback, and another tenant's batch is refused.

use serde_json::{Map, Value, json};
use spine_core::ids::TenantId;
use spine_store::Store;
use spine_store::repos::staging::{self, ImportRow, StagingCopy};
use uuid::Uuid;

pub struct Fixture {
    pub db: spine_testkit::TestDb,
    pub store: Store,
    pub tenant: TenantId,
    pub batch: Uuid,
    pub file: Uuid,
}

/// A tenant with a source, a registered file and an import batch, made as the superuser.
async fn fixture() -> Fixture {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    let (batch, file) = make_batch(&db.pool, tenant, "st").await;
    let store = Store::new(db.pool.clone());
    Fixture { db, store, tenant, batch, file }
}

async fn make_batch(pool: &sqlx::PgPool, tenant: TenantId, slug: &str) -> (Uuid, Uuid) {
    let t = tenant.as_uuid();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, 'T')")
        .bind(t)
        .bind(slug)
        .execute(pool)
        .await
        .unwrap();
    let source: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.sources (tenant_id, source_key, source_kind, display_name) \
         VALUES ($1, 'upload', 'upload', 'Upload') RETURNING id",
    )
    .bind(t)
    .fetch_one(pool)
    .await
    .unwrap();
    let file: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.files (tenant_id, source_id, original_name, storage_name, content_sha256, size_bytes, media_type) \
         VALUES ($1, $2, 'people.csv', 'people.csv', repeat('a', 64), 10, 'text/csv') RETURNING id",
    )
    .bind(t)
    .bind(source)
    .fetch_one(pool)
    .await
    .unwrap();
    let batch: Uuid =
        sqlx::query_scalar("INSERT INTO qinexus.import_batches (tenant_id, source_id) VALUES ($1, $2) RETURNING id")
            .bind(t)
            .bind(source)
            .fetch_one(pool)
            .await
            .unwrap();
    (batch, file)
}

fn parsed(n: u32, v: Value) -> ImportRow {
    let payload: Map<String, Value> = v.as_object().cloned().unwrap();
    ImportRow::Parsed { row_number: n, payload }
}

type Staged = (i32, Option<Value>, Option<String>, Option<String>, String);

async fn staged(f: &Fixture) -> Vec<Staged> {
    sqlx::query_as(
        "SELECT row_number, raw_payload, raw_text, parse_error, review_status FROM staging.import_rows \
         WHERE import_batch_id = $1 ORDER BY row_number",
    )
    .bind(f.batch)
    .fetch_all(&f.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rows_and_error_rows_land_with_numbers_and_raw_text() {
    let f = fixture().await;
    let tricky = "tab\there, newline\nthere, back\\slash, quote \" and ünïcode";
    let rows = vec![
        parsed(1, json!({"name": "Ada", "note": tricky})),
        ImportRow::Failed {
            row_number: 2,
            raw_text: "a,b,c,\\N\tx".into(),
            error: "row has 4 fields but the header has 2".into(),
        },
        parsed(3, json!({"name": "", "nested": {"k": [1, 2]}})),
    ];
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let counts = staging::copy_rows(&mut tx, f.batch, f.file, rows).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((counts.rows_total, counts.rows_ok, counts.rows_error), (3, 2, 1));
    let got = staged(&f).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1, Some(json!({"name": "Ada", "note": tricky})));
    assert_eq!((got[0].2.as_deref(), got[0].4.as_str()), (None, "pending"));
    assert_eq!(got[1].0, 2);
    assert_eq!(got[1].1, None);
    assert_eq!(got[1].2.as_deref(), Some("a,b,c,\\N\tx"), "raw text survives COPY escaping");
    assert_eq!(got[1].3.as_deref(), Some("row has 4 fields but the header has 2"));
    assert_eq!(got[1].4, "error");
    assert_eq!(got[2].1, Some(json!({"name": "", "nested": {"k": [1, 2]}})));
    let tenant: Uuid =
        sqlx::query_scalar("SELECT DISTINCT tenant_id FROM staging.import_rows").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!(tenant, f.tenant.as_uuid());
}

#[tokio::test]
async fn many_rows_stream_in_chunks_and_rollback_leaves_none() {
    let f = fixture().await;
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let mut copy = StagingCopy::begin(&mut tx, f.batch, f.file).await.unwrap();
    for n in 1..=150_000u32 {
        copy.push(&parsed(n, json!({"n": n.to_string(), "pad": "x".repeat(20)}))).await.unwrap();
    }
    let counts = copy.finish().await.unwrap();
    assert_eq!(counts.rows_ok, 150_000);
    let inside: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staging.import_rows").fetch_one(tx.conn()).await.unwrap();
    assert_eq!(inside, 150_000, "visible inside the transaction");
    drop(tx);
    assert!(staged(&f).await.is_empty(), "a rolled-back load leaves no rows");
    // Loads in one transaction share the (batch, row number) key.
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    staging::copy_rows(&mut tx, f.batch, f.file, vec![parsed(1, json!({"a": "1"}))]).await.unwrap();
    let err = staging::copy_rows(&mut tx, f.batch, f.file, vec![parsed(1, json!({"a": "again"}))]).await;
    assert!(err.is_err(), "row numbers are unique per batch");
}

#[tokio::test]
async fn another_tenants_batch_is_refused() {
    let f = fixture().await;
    let other = TenantId::new();
    let (other_batch, other_file) = make_batch(&f.db.pool, other, "other").await;
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let err = staging::copy_rows(&mut tx, other_batch, other_file, vec![parsed(1, json!({"a": "1"}))]).await;
    assert!(err.is_err(), "composite keys refuse another tenant's batch");
    drop(tx);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM staging.import_rows").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn batch_summary_is_recorded() {
    let f = fixture().await;
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let counts = staging::copy_rows(&mut tx, f.batch, f.file, vec![parsed(1, json!({"a": "1"}))]).await.unwrap();
    staging::record_batch_summary(&mut tx, f.batch, counts, &json!({"format": "csv"})).await.unwrap();
    tx.commit().await.unwrap();
    let (status, total, summary): (String, i32, Value) =
        sqlx::query_as("SELECT status, rows_total, summary FROM qinexus.import_batches WHERE id = $1")
            .bind(f.batch)
            .fetch_one(&f.db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), total), ("staged", 1));
    assert_eq!(summary["staging"]["format"], "csv");
}
