//! Provenance (issue 4 item 9): from a canonical record back through its source links to the
//! staged row, batch, file version, blob hash and capture event; and forward from a file, batch
//! or staged row to every record derived from it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{StoreError, TenantTx};

/// One step back from a record to where it came from.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Origin {
    pub record_table: String,
    pub record_id: Uuid,
    pub link_role: String,
    pub linked_at: DateTime<Utc>,
    pub import_row_id: Uuid,
    pub row_number: i32,
    pub raw_payload: Option<Value>,
    pub import_batch_id: Uuid,
    pub batch_status: String,
    pub profile: Option<String>,
    pub file_id: Uuid,
    pub file_version: i32,
    pub original_name: String,
    pub content_sha256: String,
    pub size_bytes: i64,
    pub media_type: String,
    pub capture_event_id: Uuid,
    pub ingress_kind: String,
    pub route: String,
    pub device_id: Option<String>,
    pub captured_by: String,
    pub captured_at: DateTime<Utc>,
}

const ORIGIN_SELECT: &str = "SELECT l.record_table, l.record_id, l.link_role, l.created_at AS linked_at, l.import_row_id, \
            r.row_number, r.raw_payload, l.import_batch_id, b.status AS batch_status, b.profile, \
            l.source_file_id AS file_id, l.file_version, v.original_name, v.content_sha256, v.size_bytes, v.media_type, \
            c.id AS capture_event_id, c.ingress_kind, c.route, c.device_id, c.captured_by, c.captured_at \
     FROM qinexus.source_entity_links l \
     JOIN staging.import_rows r ON r.id = l.import_row_id \
     JOIN qinexus.import_batches b ON b.id = l.import_batch_id \
     JOIN qinexus.file_versions v ON v.file_id = l.source_file_id AND v.version = l.file_version \
     JOIN qiaccess.capture_events c ON c.id = v.capture_event_id";

/// Where a record came from (one entry per staged row that fed it), oldest first.
pub async fn origins(tx: &mut TenantTx, record_id: Uuid) -> Result<Vec<Origin>, StoreError> {
    let sql = format!("{ORIGIN_SELECT} WHERE l.record_id = $1 ORDER BY l.created_at, l.id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(record_id).fetch_all(tx.conn()).await?)
}

/// Records derived from a file (any version), a batch or a staged row, in row order.
pub async fn derived(tx: &mut TenantTx, id: Uuid) -> Result<Vec<Origin>, StoreError> {
    let sql = format!(
        "{ORIGIN_SELECT} WHERE l.source_file_id = $1 OR l.import_batch_id = $1 OR l.import_row_id = $1 \
         ORDER BY l.file_version, r.row_number, l.created_at, l.id LIMIT 10000"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(tx.conn()).await?)
}

/// What an id names, among the things provenance knows: `record`, `file`, `batch`, `row`,
/// `capture` (`None` when nothing in the tenant has the id).
pub async fn kind_of(tx: &mut TenantTx, id: Uuid) -> Result<Option<&'static str>, StoreError> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT k FROM ( \
             SELECT 'record' AS k, 1 AS o WHERE EXISTS (SELECT 1 FROM qinexus.source_entity_links WHERE record_id = $1) \
             UNION ALL SELECT 'file', 2 WHERE EXISTS (SELECT 1 FROM qinexus.files WHERE id = $1) \
             UNION ALL SELECT 'batch', 3 WHERE EXISTS (SELECT 1 FROM qinexus.import_batches WHERE id = $1) \
             UNION ALL SELECT 'row', 4 WHERE EXISTS (SELECT 1 FROM staging.import_rows WHERE id = $1) \
             UNION ALL SELECT 'capture', 5 WHERE EXISTS (SELECT 1 FROM qiaccess.capture_events WHERE id = $1) \
         ) k ORDER BY o LIMIT 1",
    )
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(found.and_then(|k| ["record", "file", "batch", "row", "capture"].into_iter().find(|s| *s == k)))
}

/// The file a capture event became, when any.
pub async fn capture_file(tx: &mut TenantTx, capture_id: Uuid) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar::<_, Option<Uuid>>("SELECT file_id FROM qiaccess.capture_events WHERE id = $1")
        .bind(capture_id)
        .fetch_optional(tx.conn())
        .await?
        .flatten())
}

/// The trace of one id, as `spine trace` prints it.
pub async fn trace(tx: &mut TenantTx, id: Uuid) -> Result<Option<Value>, StoreError> {
    let Some(kind) = kind_of(tx, id).await? else { return Ok(None) };
    Ok(Some(match kind {
        "record" => json!({"id": id, "kind": "record", "origins": origins(tx, id).await?}),
        "capture" => {
            let file = capture_file(tx, id).await?;
            let derived = match file {
                Some(f) => derived(tx, f).await?,
                None => Vec::new(),
            };
            json!({"id": id, "kind": "capture", "file_id": file, "derived": derived})
        }
        other => json!({"id": id, "kind": other, "derived": derived(tx, id).await?}),
    }))
}

/// A registered file with its versions.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct FileVersionRow {
    pub version: i32,
    pub original_name: String,
    pub content_sha256: String,
    pub size_bytes: i64,
    pub media_type: String,
    pub capture_event_id: Uuid,
    pub import_batch_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct FileRow {
    pub id: Uuid,
    pub original_name: String,
    pub storage_name: String,
    pub current_version: i32,
    pub content_sha256: String,
    pub size_bytes: i64,
    pub media_type: String,
    pub status: String,
    pub source_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn file(tx: &mut TenantTx, id: Uuid) -> Result<(FileRow, Vec<FileVersionRow>), StoreError> {
    let file: FileRow = sqlx::query_as(
        "SELECT f.id, f.original_name, f.storage_name, f.current_version, f.content_sha256, f.size_bytes, f.media_type, \
                f.status, s.source_key, f.created_at, f.updated_at \
         FROM qinexus.files f JOIN qinexus.sources s ON s.id = f.source_id WHERE f.id = $1",
    )
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)?;
    let versions = sqlx::query_as(
        "SELECT v.version, v.original_name, v.content_sha256, v.size_bytes, v.media_type, v.capture_event_id, \
                i.import_batch_id, v.created_at \
         FROM qinexus.file_versions v \
         LEFT JOIN qinexus.import_files i ON i.file_id = v.file_id AND i.file_version = v.version \
         WHERE v.file_id = $1 ORDER BY v.version",
    )
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    Ok((file, versions))
}

/// An import batch with its counts and files.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct BatchRow {
    pub id: Uuid,
    pub status: String,
    pub profile: Option<String>,
    pub rows_total: i32,
    pub rows_ok: i32,
    pub rows_error: i32,
    pub summary: Value,
    pub file_id: Option<Uuid>,
    pub file_version: Option<i32>,
    pub file_status: Option<String>,
    pub file_error: Option<String>,
    /// Staged rows per review status.
    pub review: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn batch(tx: &mut TenantTx, id: Uuid) -> Result<BatchRow, StoreError> {
    sqlx::query_as(
        "SELECT b.id, b.status, b.profile, b.rows_total, b.rows_ok, b.rows_error, b.summary, \
                i.file_id, i.file_version, i.status AS file_status, i.error_message AS file_error, \
                coalesce((SELECT jsonb_object_agg(review_status, n) FROM \
                          (SELECT review_status, count(*) AS n FROM staging.import_rows WHERE import_batch_id = b.id \
                           GROUP BY review_status) s), '{}') AS review, \
                b.created_at, b.updated_at \
         FROM qinexus.import_batches b \
         LEFT JOIN qinexus.import_files i ON i.import_batch_id = b.id \
         WHERE b.id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)
}
