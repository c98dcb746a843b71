//! The processing step after registration: which file version a batch holds, and its outcome.

use uuid::Uuid;

use crate::queue::Lease;
use crate::{StoreError, TenantTx};

/// Batch entries of file versions with what processing needs, locked (`FOR UPDATE`, in id
/// order, so two runs of the same job serialise and batches cannot deadlock): `$cols` are more
/// columns to select, `$from` more relations before the entries, `$which` picks the entries.
macro_rules! lock_import_files_sql {
    ($cols:literal, $from:literal, $which:literal) => {
        concat!(
            "SELECT ",
            $cols,
            "f.id, f.status, v.original_name, v.content_sha256, v.size_bytes, v.media_type, \
                    b.profile, b.forced_profile \
             FROM ",
            $from,
            "qinexus.import_files f \
             JOIN qinexus.file_versions v ON v.file_id = f.file_id AND v.version = f.file_version \
             JOIN qinexus.import_batches b ON b.id = f.import_batch_id \
             WHERE ",
            $which,
            " ORDER BY f.id FOR UPDATE OF f"
        )
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
    sqlx::query_as(lock_import_files_sql!("", "", "f.import_batch_id = $1 AND f.file_id = $2 AND f.file_version = $3"))
        .bind(import_batch_id)
        .bind(file_id)
        .bind(version)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

/// A file version a processing job is for, with the job's lease.
#[derive(Clone, Debug)]
pub struct ProcessItem {
    pub import_batch_id: Uuid,
    pub file_id: Uuid,
    pub version: i32,
    /// The attempt's lease: given, a finished file's job is ended in the same statement.
    pub lease: Option<Lease>,
}

/// [`lock_import_file`] for every item, and for each file version still to be processed whose
/// media type is not one of `staged_types`, also its outcome (processed; the batch
/// `registered`) and its job's success (while its lease holds; decision 0030), all in one
/// statement: what processing does for most files, for several jobs at once. Returns, per item
/// in order, the entry as it was locked and what was done, or `None` when the batch holds no
/// such file version.
pub async fn lock_and_finish_unstaged(
    tx: &mut TenantTx,
    items: &[ProcessItem],
    staged_types: &[&str],
) -> Result<Vec<Option<Locked>>, StoreError> {
    let rows: Vec<Locked> = sqlx::query_as(concat!(
        "WITH r AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $5::uuid[], $6::text[], $7::int4[]) \
                    WITH ORDINALITY AS r(batch, file, version, job, worker, attempt, ord)), \
              t AS (",
        lock_import_files_sql!(
            "r.ord, r.job, r.worker, r.attempt, ",
            "r, ",
            "f.import_batch_id = r.batch AND f.file_id = r.file AND f.file_version = r.version"
        ),
        "), \
              done AS (UPDATE qinexus.import_files i SET status = 'processed', error_message = NULL, updated_at = now() \
                       FROM t WHERE i.id = t.id AND t.status IN ('registered', 'processing') \
                         AND NOT (t.media_type = ANY($4)) \
                       RETURNING i.id, i.import_batch_id, i.file_id), \
              x AS (UPDATE qinexus.files f SET status = 'processed', updated_at = now() FROM done WHERE f.id = done.file_id), \
              b AS (UPDATE qinexus.import_batches b SET status = 'registered', updated_at = now() \
                    FROM done WHERE b.id = done.import_batch_id), \
              job AS (",
        crate::succeed_held_job_sql!("FROM t JOIN done ON done.id = t.id", "t.job", "t.worker", "t.attempt"),
        " RETURNING j.id) \
         SELECT t.ord, t.id, t.status, t.original_name, t.content_sha256, t.size_bytes, t.media_type, t.profile, \
                t.forced_profile, EXISTS (SELECT 1 FROM done WHERE done.id = t.id) AS finished, \
                EXISTS (SELECT 1 FROM job WHERE job.id = t.job) AS job_succeeded \
         FROM t ORDER BY t.ord"
    ))
    .bind(items.iter().map(|i| i.import_batch_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.file_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.version).collect::<Vec<_>>())
    .bind(staged_types)
    .bind(items.iter().map(|i| i.lease.as_ref().map(|l| l.job_id)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.lease.as_ref().map(|l| l.worker.as_str())).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.lease.as_ref().map(|l| l.attempt)).collect::<Vec<_>>())
    .fetch_all(tx.conn())
    .await?;
    let mut out: Vec<Option<Locked>> = items.iter().map(|_| None).collect();
    for row in rows {
        let i = usize::try_from(row.ord - 1).map_err(|_| StoreError::Invalid("row order".into()))?;
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(row);
        }
    }
    Ok(out)
}

/// What [`lock_and_finish_unstaged`] found and did for one item.
#[derive(Debug, sqlx::FromRow)]
pub struct Locked {
    /// The item's position, 1-based.
    ord: i64,
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
