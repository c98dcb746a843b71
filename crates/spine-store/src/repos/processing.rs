//! The processing step after registration: which file version a batch holds, and its outcome.

use uuid::Uuid;

use crate::queue::Lease;
use crate::{StoreError, TenantTx};

/// The batch's entry for a file version (`$1` batch, `$2` file, `$3` version) with what
/// processing needs, locked (`FOR UPDATE`, so two runs of the same job serialise).
macro_rules! lock_import_file_sql {
    () => {
        "SELECT f.id, f.status, v.original_name, v.content_sha256, v.size_bytes, v.media_type, b.profile, \
                b.forced_profile \
         FROM qinexus.import_files f \
         JOIN qinexus.file_versions v ON v.file_id = f.file_id AND v.version = f.file_version \
         JOIN qinexus.import_batches b ON b.id = f.import_batch_id \
         WHERE f.import_batch_id = $1 AND f.file_id = $2 AND f.file_version = $3 \
         FOR UPDATE OF f"
    };
}

/// One file version of a batch, locked for processing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportFile {
    pub id: Uuid,
    pub status: String,
    pub original_name: String,
    pub content_sha256: String,
    pub size_bytes: i64,
    pub media_type: String,
    /// The batch's profile (forced at upload, or set by detection).
    pub profile: Option<String>,
    pub forced_profile: bool,
}

/// Locks the batch's entry for the file version (`FOR UPDATE`, so two runs of the same job
/// serialise) and returns it.
pub async fn lock_import_file(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    file_id: Uuid,
    version: i32,
) -> Result<ImportFile, StoreError> {
    sqlx::query_as(lock_import_file_sql!())
        .bind(import_batch_id)
        .bind(file_id)
        .bind(version)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

/// [`lock_import_file`], and when the file version is still to be processed and its media type
/// is not one of `staged_types`, also its outcome (processed; the batch `registered`) and, given
/// the attempt's `lease`, the job's success, all in one statement: what a processing job does
/// for most files. Returns the entry as it was locked, whether it was finished here, and whether
/// the job's success was recorded (the lease still held).
pub async fn lock_and_finish_unstaged(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    file_id: Uuid,
    version: i32,
    staged_types: &[&str],
    lease: Option<&Lease>,
) -> Result<Locked, StoreError> {
    let row: Option<Locked> = sqlx::query_as(concat!(
        "WITH t AS (",
        lock_import_file_sql!(),
        "), \
              done AS (UPDATE qinexus.import_files i SET status = 'processed', error_message = NULL, updated_at = now() \
                       FROM t WHERE i.id = t.id AND t.status IN ('registered', 'processing') \
                         AND NOT (t.media_type = ANY($4)) \
                       RETURNING i.import_batch_id, i.file_id), \
              x AS (UPDATE qinexus.files SET status = 'processed', updated_at = now() \
                    WHERE id = (SELECT file_id FROM done)), \
              b AS (UPDATE qinexus.import_batches SET status = 'registered', updated_at = now() \
                    WHERE id = (SELECT import_batch_id FROM done)), \
              job AS (",
        crate::succeed_held_job_sql!("$5", "$6", "$7"),
        " AND EXISTS (SELECT 1 FROM done) RETURNING 1) \
         SELECT t.*, EXISTS (SELECT 1 FROM done) AS finished, EXISTS (SELECT 1 FROM job) AS job_succeeded FROM t"
    ))
    .bind(import_batch_id)
    .bind(file_id)
    .bind(version)
    .bind(staged_types)
    .bind(lease.map(|l| l.job_id))
    .bind(lease.map(|l| l.worker.as_str()))
    .bind(lease.map(|l| l.attempt))
    .fetch_optional(tx.conn())
    .await?;
    row.ok_or(StoreError::NotFound)
}

/// What [`lock_and_finish_unstaged`] found and did.
#[derive(Debug, sqlx::FromRow)]
pub struct Locked {
    #[sqlx(flatten)]
    pub file: ImportFile,
    /// The file version was finished by the statement (nothing to stage).
    pub finished: bool,
    /// The job's success was recorded too (in the same transaction).
    pub job_succeeded: bool,
}

/// Records the outcome: the import file, the file and (unless staging already did) the batch.
/// `batch_status` is `registered` for files with nothing to stage, `failed` when the file could
/// not be processed; `None` leaves the batch as staging left it.
pub async fn finish_import_file(
    tx: &mut TenantTx,
    import_file_id: Uuid,
    error: Option<&str>,
    batch_status: Option<&str>,
) -> Result<(), StoreError> {
    let status = if error.is_some() { "failed" } else { "processed" };
    // One statement (each processing job runs this once per file): the import file, its file,
    // and the batch when asked.
    let found: i64 = sqlx::query_scalar(
        "WITH f AS (UPDATE qinexus.import_files SET status = $2, error_message = $3 WHERE id = $1 \
                    RETURNING import_batch_id, file_id), \
              x AS (UPDATE qinexus.files SET status = $2 WHERE id = (SELECT file_id FROM f)), \
              b AS (UPDATE qinexus.import_batches SET status = $4, \
                           summary = CASE WHEN $3::text IS NULL THEN summary \
                                          ELSE summary || jsonb_build_object('error', $3::text) END \
                    WHERE $4::text IS NOT NULL AND id = (SELECT import_batch_id FROM f)) \
         SELECT count(*) FROM f",
    )
    .bind(import_file_id)
    .bind(status)
    .bind(error)
    .bind(batch_status)
    .fetch_one(tx.conn())
    .await?;
    if found == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Sets the batch's profile (detection's choice; a forced profile is left alone).
pub async fn set_batch_profile(tx: &mut TenantTx, import_batch_id: Uuid, profile: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE qinexus.import_batches SET profile = $2 WHERE id = $1 AND NOT forced_profile")
        .bind(import_batch_id)
        .bind(profile)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Sets `summary[key]` on the batch.
pub async fn merge_batch_summary(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    key: &str,
    value: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE qinexus.import_batches SET summary = summary || jsonb_build_object($2::text, $3::jsonb) WHERE id = $1",
    )
    .bind(import_batch_id)
    .bind(key)
    .bind(sqlx::types::Json(value))
    .execute(tx.conn())
    .await?;
    Ok(())
}
