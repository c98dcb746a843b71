//! Parse + COPY together on a real PostgreSQL: a CSV with good and bad rows lands with the right
//! row numbers and raw text and a batch summary; a reader that fails midway leaves zero rows.

use std::io::Read;

use serde_json::{Value, json};
use spine_core::ids::TenantId;
use spine_pipeline::staging::{ParseOptions, StagingError, stage};
use spine_store::Store;
use uuid::Uuid;

type Staged = (i32, Option<Value>, Option<String>, Option<String>, String);

async fn fixture() -> (spine_testkit::TestDb, Store, TenantId, Uuid, Uuid) {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    let t = tenant.as_uuid();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'sl', 'T')")
        .bind(t)
        .execute(&db.pool)
        .await
        .unwrap();
    let source: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.sources (tenant_id, source_key, source_kind, display_name) \
         VALUES ($1, 'upload', 'upload', 'Upload') RETURNING id",
    )
    .bind(t)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let file: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.files (tenant_id, source_id, original_name, storage_name, content_sha256, size_bytes, media_type) \
         VALUES ($1, $2, 'p.csv', 'p.csv', repeat('b', 64), 1, 'text/csv') RETURNING id",
    )
    .bind(t)
    .bind(source)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let batch: Uuid =
        sqlx::query_scalar("INSERT INTO qinexus.import_batches (tenant_id, source_id) VALUES ($1, $2) RETURNING id")
            .bind(t)
            .bind(source)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let store = Store::new(db.pool.clone());
    (db, store, tenant, batch, file)
}

#[tokio::test]
async fn csv_with_good_and_bad_rows_is_staged() {
    let (db, store, tenant, batch, file) = fixture().await;
    let csv = b"name;email;note\nAda;ada@example.org;\"multi\nline; quoted\"\nBob;bob@example.org;x;extra\nCy\xE9;cy@example.org;ok\nNul;n\0ul@example.org;\n".to_vec();
    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let report = stage(&mut tx, batch, file, std::io::Cursor::new(csv), ParseOptions::default()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((report.counts.rows_ok, report.counts.rows_error), (2, 2));
    assert_eq!(report.summary.delimiter, Some(';'));
    let rows: Vec<Staged> = sqlx::query_as(
        "SELECT row_number, raw_payload, raw_text, parse_error, review_status FROM staging.import_rows ORDER BY row_number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].1, Some(json!({"name": "Ada", "email": "ada@example.org", "note": "multi\nline; quoted"})));
    assert_eq!(
        (rows[1].0, rows[1].2.as_deref(), rows[1].4.as_str()),
        (2, Some("Bob;bob@example.org;x;extra"), "error")
    );
    assert!(rows[1].3.as_deref().unwrap().contains("4 fields"));
    assert_eq!(
        rows[2].1,
        Some(json!({"name": "Cyé", "email": "cy@example.org", "note": "ok"})),
        "read as windows-1252"
    );
    assert_eq!((rows[3].0, rows[3].2.as_deref()), (4, Some("Nul;n\u{FFFD}ul@example.org;")));
    let (status, ok, bad, summary): (String, i32, i32, Value) =
        sqlx::query_as("SELECT status, rows_ok, rows_error, summary FROM qinexus.import_batches WHERE id = $1")
            .bind(batch)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), ok, bad), ("staged", 2, 2));
    assert_eq!(summary["staging"]["header"], json!(["name", "email", "note"]));
    assert_eq!(summary["staging"]["encoding"], "windows-1252", "the first 64 KiB are not UTF-8");
}

/// Yields `rows` CSV rows, then fails.
struct FailsAfter {
    rows: usize,
    sent: usize,
}

impl Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent == 0 {
            self.sent = 1;
            let h = b"a,b\n";
            buf[..h.len()].copy_from_slice(h);
            return Ok(h.len());
        }
        if self.sent > self.rows {
            return Err(std::io::Error::other("connection reset while reading the upload"));
        }
        let line = format!("{},value\n", self.sent);
        let n = line.len().min(buf.len());
        buf[..n].copy_from_slice(&line.as_bytes()[..n]);
        self.sent += 1;
        Ok(n)
    }
}

#[tokio::test]
async fn a_load_that_fails_midway_leaves_no_rows() {
    let (db, store, tenant, batch, file) = fixture().await;
    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let input = FailsAfter { rows: 50_000, sent: 0 };
    let err = stage(&mut tx, batch, file, input, ParseOptions::default()).await.unwrap_err();
    assert!(matches!(err, StagingError::Io(_)), "{err}");
    drop(tx);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM staging.import_rows").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 0);
    let status: String = sqlx::query_scalar("SELECT status FROM qinexus.import_batches WHERE id = $1")
        .bind(batch)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "received");
}
