//! `spine.file.process`: what happens to a registered file version. Structured files (CSV, JSON,
//! NDJSON) are staged row by row and each row gets its profile's proposal; other files are
//! recorded as registered (extraction joins later). Everything a run writes commits in one
//! transaction together with the file's new status, so a run that dies leaves nothing and the
//! retry starts over; a run that finds the file already processed does nothing.

use std::time::Duration;

use serde::Deserialize;
use spine_core::jobs::{ErrorClass, JobError, RetryPolicy};
use spine_store::StoreError;
use spine_store::blob::BlobStore;
use spine_store::repos::processing::{self, ImportFile, ProcessItem};
use tokio_util::io::SyncIoBridge;
use uuid::Uuid;

use crate::review::propose;
use crate::staging::{self, ParseOptions, StagingError};
use crate::worker::{Handlers, JobContext};

pub use spine_store::repos::registration::PROCESS_FILE_KIND;

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Payload {
    #[serde(rename = "file_process.v1")]
    V1 { file_id: Uuid, version: i32, import_batch_id: Uuid },
}

/// Media types whose content is staged as rows.
const STRUCTURED: [&str; 4] = ["text/csv", "text/tab-separated-values", "application/json", "application/x-ndjson"];

/// Processing jobs a worker hands the handler at once, at most.
const BATCH_MAX: usize = 32;

/// While files keep arriving, a worker claims their processing jobs this long after its last
/// claim found some, so that a claim and a batch take several (decision 0034): 4,096 uploads of
/// 64 KiB took a fifth less time and a third less PostgreSQL CPU than with claims at once.
pub const LINGER: Duration = Duration::from_millis(25);

/// Adds the processing handler (it needs the blob store) to `handlers`.
pub fn with_handlers(handlers: Handlers, blobs: BlobStore, policy: RetryPolicy) -> Handlers {
    handlers
        .register_batch(PROCESS_FILE_KIND, policy, BATCH_MAX, move |ctxs| run_batch(ctxs, blobs.clone()))
        .linger(PROCESS_FILE_KIND, LINGER)
}

fn store_error(e: StoreError) -> JobError {
    match e {
        StoreError::NotFound => JobError::new(ErrorClass::Invalid, "the file version of this job is not registered"),
        other => JobError::new(ErrorClass::Internal, other.to_string()),
    }
}

/// Several jobs (of one tenant; often one): one transaction and one statement finish every file
/// with nothing to stage, and end those jobs (decision 0030); each other file then runs alone.
async fn run_batch(ctxs: Vec<JobContext>, blobs: BlobStore) -> Vec<Result<(), JobError>> {
    let mut results: Vec<Option<Result<(), JobError>>> = ctxs.iter().map(|_| None).collect();
    let mut items = Vec::with_capacity(ctxs.len());
    let mut of_item = Vec::with_capacity(ctxs.len());
    for (i, ctx) in ctxs.iter().enumerate() {
        match ctx.payload_as() {
            Ok(Payload::V1 { file_id, version, import_batch_id }) => {
                items.push(ProcessItem { import_batch_id, file_id, version, lease: Some(ctx.lease()) });
                of_item.push(i);
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let locked = match lock_and_finish(&ctxs[0], &items).await {
        Ok(l) => l,
        Err(e) => return results.into_iter().map(|r| r.unwrap_or_else(|| Err(e.clone()))).collect(),
    };
    let mut rest = Vec::new();
    for ((i, item), l) in of_item.into_iter().zip(&items).zip(locked) {
        results[i] = match l {
            None => Some(Err(store_error(StoreError::NotFound))),
            Some(l) if l.finished => {
                if l.job_succeeded {
                    ctxs[i].succeeded_in_transaction();
                }
                Some(Ok(()))
            }
            Some(_) => {
                rest.push((i, item));
                None
            }
        };
    }
    for (i, item) in rest {
        results[i] = Some(stage_one(&ctxs[i], &blobs, item).await);
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(JobError::new(ErrorClass::Internal, "not run")))).collect()
}

/// The batch's statement in a transaction of the jobs' tenant, committed.
async fn lock_and_finish(ctx: &JobContext, items: &[ProcessItem]) -> Result<Vec<Option<processing::Locked>>, JobError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = ctx.store.tenant_tx(ctx.tenant).await.map_err(store_error)?;
    let locked = processing::lock_and_finish_unstaged(&mut tx, items, &STRUCTURED).await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(locked)
}

/// One file the batch's statement did not finish: staged (structured), or already processed by
/// an earlier run. Its job ends through the worker.
async fn stage_one(ctx: &JobContext, blobs: &BlobStore, item: &ProcessItem) -> Result<(), JobError> {
    let ProcessItem { import_batch_id, file_id, version, .. } = *item;
    let mut tx = ctx.store.tenant_tx(ctx.tenant).await.map_err(store_error)?;
    let file = processing::lock_import_file(&mut tx, import_batch_id, file_id, version).await.map_err(store_error)?;
    if file.status != "registered" && file.status != "processing" {
        tracing::info!(%file_id, version, status = %file.status, "file already processed");
        return Ok(());
    }
    match stage_and_propose(&mut tx, blobs, &file, import_batch_id, file_id).await {
        Ok(()) => {
            processing::finish_import_file(&mut tx, file.id, None, None).await.map_err(store_error)?;
            tx.commit().await.map_err(store_error)
        }
        Err(Failure::Retry(e)) => Err(e),
        Err(Failure::BadFile(reason)) => {
            // Start over so nothing the failed staging wrote is kept, then record why.
            drop(tx);
            let mut tx = ctx.store.tenant_tx(ctx.tenant).await.map_err(store_error)?;
            let file =
                processing::lock_import_file(&mut tx, import_batch_id, file_id, version).await.map_err(store_error)?;
            processing::finish_import_file(&mut tx, file.id, Some(&reason), Some("failed"))
                .await
                .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            tracing::warn!(%file_id, version, %reason, "file could not be staged");
            Ok(())
        }
    }
}

enum Failure {
    /// Try again later (database, blob store).
    Retry(JobError),
    /// The file itself cannot be staged: recorded on the file, no retry.
    BadFile(String),
}

async fn stage_and_propose(
    tx: &mut spine_store::TenantTx,
    blobs: &BlobStore,
    file: &ImportFile,
    import_batch_id: Uuid,
    file_id: Uuid,
) -> Result<(), Failure> {
    let reader = blobs
        .open(&file.content_sha256)
        .await
        .map_err(|e| Failure::Retry(JobError::new(ErrorClass::Internal, format!("opening the blob: {e}"))))?;
    let input = SyncIoBridge::new(reader);
    let report =
        staging::stage(tx, import_batch_id, file_id, input, ParseOptions::default()).await.map_err(|e| match e {
            StagingError::HeaderTooLarge(_) | StagingError::TooManyRows => Failure::BadFile(e.to_string()),
            StagingError::Store(s) => Failure::Retry(store_error(s)),
            other => Failure::Retry(JobError::new(ErrorClass::Internal, other.to_string())),
        })?;
    propose::propose_batch(tx, import_batch_id, file, &report.summary.header)
        .await
        .map_err(|e| Failure::Retry(store_error(e)))?;
    Ok(())
}
