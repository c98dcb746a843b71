//! qiaccess.inbox_entries: the local inbox watcher's record of the files it took (migration
//! 20261122000016). Every function runs in the caller's ingest transaction (`Store::ingest_tx`).
//!
//! An entry is written as `registering` before its registration transaction runs; that
//! transaction's capture event carries the entry id in `details.inbox_entry_id`, so
//! [`capture_for_entry`] tells after a crash whether the registration committed.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{StoreError, TenantTx};

/// Intent recorded; the registration's outcome is not known yet.
pub const REGISTERING: &str = "registering";
pub const REGISTERED: &str = "registered";
pub const DUPLICATE: &str = "duplicate";
pub const FAILED: &str = "failed";

/// One entry as the watcher needs it back after a restart.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct InboxEntry {
    pub id: Uuid,
    pub relative_path: String,
    /// The relative path's bytes when they are not valid UTF-8.
    pub raw_path: Option<Vec<u8>>,
    pub size_bytes: i64,
    pub file_mtime_ns: i64,
    pub content_sha256: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "id, relative_path, raw_path, size_bytes, file_mtime_ns, content_sha256, status, created_at";

/// A new entry: an intent (`registering`) or, for a file that failed before registration, a
/// finished `failed` one.
#[derive(Clone, Debug)]
pub struct NewInboxEntry<'a> {
    pub id: Uuid,
    pub folder: &'a str,
    pub relative_path: &'a str,
    pub raw_path: Option<&'a [u8]>,
    pub size_bytes: u64,
    pub file_mtime_ns: i64,
    pub content_sha256: Option<&'a str>,
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub moved_to: Option<&'a str>,
    pub created_by: &'a str,
}

/// How an entry ended.
#[derive(Clone, Debug)]
pub struct Finished<'a> {
    pub status: &'a str,
    pub file_id: Option<Uuid>,
    pub file_version: Option<i32>,
    pub capture_event_id: Option<Uuid>,
    pub reason: Option<&'a str>,
    pub moved_to: Option<&'a str>,
    pub updated_by: &'a str,
}

/// The capture an entry's registration wrote.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EntryCapture {
    pub capture_id: Uuid,
    pub file_id: Option<Uuid>,
    pub file_version: Option<i32>,
    pub import_batch_id: Option<Uuid>,
    pub is_duplicate: bool,
    pub content_sha256: Option<String>,
}

fn size_i64(size: u64) -> Result<i64, StoreError> {
    i64::try_from(size).map_err(|_| StoreError::Invalid("file too large".into()))
}

/// Writes a new entry, or takes a `registering` entry with the same id again (a retry whose
/// earlier registration did not commit): then what is read now replaces what was read before.
/// A finished entry with the id is left as it is.
pub async fn insert(tx: &mut TenantTx, e: &NewInboxEntry<'_>) -> Result<(), StoreError> {
    let tenant = tx.tenant();
    sqlx::query(
        "INSERT INTO qiaccess.inbox_entries (id, tenant_id, folder, relative_path, raw_path, size_bytes, file_mtime_ns, \
                                              content_sha256, status, reason, moved_to, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         ON CONFLICT (id) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, file_mtime_ns = EXCLUDED.file_mtime_ns, \
                content_sha256 = EXCLUDED.content_sha256, status = EXCLUDED.status, reason = EXCLUDED.reason, \
                moved_to = EXCLUDED.moved_to, updated_by = EXCLUDED.updated_by \
         WHERE qiaccess.inbox_entries.status = 'registering'",
    )
    .bind(e.id)
    .bind(tenant.as_uuid())
    .bind(e.folder)
    .bind(e.relative_path)
    .bind(e.raw_path)
    .bind(size_i64(e.size_bytes)?)
    .bind(e.file_mtime_ns)
    .bind(e.content_sha256)
    .bind(e.status)
    .bind(e.reason)
    .bind(e.moved_to)
    .bind(e.created_by)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "inbox entry"))?;
    Ok(())
}

/// Records how a `registering` entry ended. `NotFound` when it is not (or no longer) registering.
pub async fn finish(tx: &mut TenantTx, id: Uuid, f: &Finished<'_>) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE qiaccess.inbox_entries SET status = $2, file_id = $3, file_version = $4, capture_event_id = $5, \
                reason = $6, moved_to = $7, updated_by = $8 \
         WHERE id = $1 AND status = 'registering'",
    )
    .bind(id)
    .bind(f.status)
    .bind(f.file_id)
    .bind(f.file_version)
    .bind(f.capture_event_id)
    .bind(f.reason)
    .bind(f.moved_to)
    .bind(f.updated_by)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "inbox entry"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Entries of `folder` still `registering`: registrations whose outcome was never recorded.
pub async fn unfinished(tx: &mut TenantTx, folder: &str) -> Result<Vec<InboxEntry>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM qiaccess.inbox_entries WHERE folder = $1 AND status = 'registering' ORDER BY created_at"
    )))
    .bind(folder)
    .fetch_all(tx.conn())
    .await?)
}

/// The newest finished entry of every path of `folder` (what a read-only folder already took).
pub async fn latest_finished(tx: &mut TenantTx, folder: &str) -> Result<Vec<InboxEntry>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (relative_path, raw_path) {COLS} FROM qiaccess.inbox_entries \
         WHERE folder = $1 AND status <> 'registering' \
         ORDER BY relative_path, raw_path, created_at DESC, id DESC"
    )))
    .bind(folder)
    .fetch_all(tx.conn())
    .await?)
}

/// The capture event written by the registration of entry `id` (recorded no earlier than
/// `since`), when that registration committed.
pub async fn capture_for_entry(
    tx: &mut TenantTx,
    id: Uuid,
    since: DateTime<Utc>,
) -> Result<Option<EntryCapture>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id AS capture_id, file_id, file_version, import_batch_id, is_duplicate, content_sha256 \
         FROM qiaccess.capture_events \
         WHERE captured_at >= $2 AND details ->> 'inbox_entry_id' = $1 \
         ORDER BY captured_at LIMIT 1",
    )
    .bind(id.to_string())
    .bind(since - Duration::minutes(10))
    .fetch_optional(tx.conn())
    .await?)
}
