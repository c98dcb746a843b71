//! `fsck`: the blob store against the database's references.
//!
//! References are the content hashes of `qinexus.files` (and of `qinexus.file_versions` when that
//! table exists). They are loaded once, sorted, as 32-byte values (32 bytes per distinct hash),
//! and merged with the store's listing, which comes in hash order a page at a time. Every blob is
//! re-hashed. The report names blobs that are missing (referenced, absent), corrupt (content
//! hash ≠ name) and orphaned (present, unreferenced, with their age), and temp data older than
//! the temp age. Repair removes orphans older than the grace period (re-checking just before
//! each removal that nothing references it by now) and the stale temp data; it never touches a
//! referenced blob, corrupt or not.

use std::time::Duration;

use chrono::Utc;
use futures_util::TryStreamExt as _;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool};

use super::ingest::hash_reader;
use super::{BlobError, BlobInfo, BlobStore, STALE_TEMP_AGE, TempEntry};

#[derive(Clone, Debug)]
pub struct FsckOptions {
    /// Remove orphans older than `grace` and temp data older than `temp_age`.
    pub repair: bool,
    /// Orphans younger than this are left alone (an upload may be about to reference them).
    pub grace: Duration,
    /// Temp data older than this is abandoned.
    pub temp_age: Duration,
}

impl Default for FsckOptions {
    fn default() -> Self {
        Self { repair: false, grace: Duration::from_secs(24 * 3600), temp_age: STALE_TEMP_AGE }
    }
}

/// How far a run has got, reported after every blob.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FsckProgress {
    pub blobs: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CorruptBlob {
    pub sha256: String,
    pub size: u64,
    /// SHA-256 of the stored bytes, when they could be read.
    pub actual_sha256: Option<String>,
    pub detail: String,
    pub referenced: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct OrphanBlob {
    pub sha256: String,
    pub size: u64,
    pub age_secs: u64,
    /// Older than the grace period: a problem, and removed by repair.
    pub past_grace: bool,
    pub removed: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FsckReport {
    /// The store checked (`local:<root>` or `s3:<bucket>`).
    pub store: String,
    /// Distinct content hashes the database references.
    pub referenced: u64,
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// Referenced hashes with no blob.
    pub missing: Vec<String>,
    pub corrupt: Vec<CorruptBlob>,
    pub orphans: Vec<OrphanBlob>,
    /// Temp data older than the temp age (removed when `repair`).
    pub stale_temp: Vec<TempEntry>,
    pub repair: bool,
}

impl FsckReport {
    /// Problems that remain after this run: missing and corrupt blobs, orphans past the grace
    /// period that were not removed, stale temp data that was not removed.
    pub fn unresolved(&self) -> usize {
        let orphans = self.orphans.iter().filter(|o| o.past_grace && !o.removed).count();
        let temp = if self.repair { 0 } else { self.stale_temp.len() };
        self.missing.len() + self.corrupt.len() + orphans + temp
    }
}

/// Checks every blob against the database's references; see the module documentation.
pub async fn fsck(
    pool: &PgPool,
    blobs: &BlobStore,
    opts: &FsckOptions,
    mut progress: impl FnMut(FsckProgress) + Send,
) -> Result<FsckReport, BlobError> {
    let source = reference_source(pool).await?;
    let refs = load_references(pool, &source).await?;
    let mut report = FsckReport {
        store: blobs.describe(),
        referenced: refs.len() as u64,
        repair: opts.repair,
        ..Default::default()
    };
    let now = Utc::now();
    let mut next_ref = 0usize;
    let listing = blobs.list();
    futures_util::pin_mut!(listing);
    while let Some(info) = listing.try_next().await? {
        let key = parse_hash(&info.sha256).expect("the store lists valid hashes only");
        while next_ref < refs.len() && refs[next_ref] < key {
            report.missing.push(hex::encode(refs[next_ref]));
            next_ref += 1;
        }
        let referenced = next_ref < refs.len() && refs[next_ref] == key;
        if referenced {
            next_ref += 1;
        }
        if let Some(c) = rehash(blobs, &info, referenced, &mut report, &mut progress).await? {
            report.corrupt.push(c);
        }
        if !referenced {
            let age = (now - info.modified).to_std().unwrap_or_default();
            let past_grace = age > opts.grace;
            let mut removed = false;
            if opts.repair && past_grace && !is_referenced(pool, &source, &info.sha256).await? {
                removed = blobs.delete(&info.sha256).await?;
                tracing::info!(blob = %info.sha256, size = info.size, "fsck: removed an orphan blob");
            }
            report.orphans.push(OrphanBlob {
                sha256: info.sha256.clone(),
                size: info.size,
                age_secs: age.as_secs(),
                past_grace,
                removed,
            });
        }
    }
    report.missing.extend(refs[next_ref..].iter().map(hex::encode));
    report.stale_temp = blobs.sweep_temp(opts.temp_age, opts.repair).await?;
    Ok(report)
}

/// Re-hashes one blob; `Some` when it is corrupt or unreadable.
async fn rehash(
    blobs: &BlobStore,
    info: &BlobInfo,
    referenced: bool,
    report: &mut FsckReport,
    progress: &mut (impl FnMut(FsckProgress) + Send),
) -> Result<Option<CorruptBlob>, BlobError> {
    let corrupt = |actual: Option<String>, detail: String| CorruptBlob {
        sha256: info.sha256.clone(),
        size: info.size,
        actual_sha256: actual,
        detail,
        referenced,
    };
    let mut reader = match blobs.open(&info.sha256).await {
        Ok(r) => r,
        Err(BlobError::NotFound(_)) => return Ok(None), // removed since it was listed
        Err(e) => return Ok(Some(corrupt(None, format!("unreadable: {e}")))),
    };
    let base = (report.blobs_checked, report.bytes_checked);
    let hashed = hash_reader(&mut reader, |n| {
        report.bytes_checked += n;
        progress(FsckProgress { blobs: base.0, bytes: report.bytes_checked });
    })
    .await;
    report.blobs_checked += 1;
    progress(FsckProgress { blobs: report.blobs_checked, bytes: report.bytes_checked });
    Ok(match hashed {
        Err(e) => Some(corrupt(None, format!("unreadable: {e}"))),
        Ok((actual, _)) if actual != info.sha256 => {
            Some(corrupt(Some(actual), "the content's hash differs from the blob's name".into()))
        }
        Ok((_, len)) if len != info.size => Some(corrupt(None, format!("{len} bytes read, {} listed", info.size))),
        Ok(_) => None,
    })
}

/// The SQL source of every referenced hash, as column `h`.
async fn reference_source(pool: &PgPool) -> Result<String, BlobError> {
    let versions: Option<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
          WHERE table_schema = 'qinexus' AND table_name = 'file_versions'
            AND column_name IN ('content_sha256', 'sha256', 'blob_sha256')
          ORDER BY array_position(ARRAY['content_sha256', 'sha256', 'blob_sha256'], column_name::text)
          LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let mut source = "SELECT content_sha256 AS h FROM qinexus.files".to_owned();
    if let Some(col) = versions {
        // `col` is one of the three literal names above.
        source.push_str(&format!(" UNION ALL SELECT {col} AS h FROM qinexus.file_versions"));
    }
    Ok(source)
}

async fn load_references(pool: &PgPool, source: &str) -> Result<Vec<[u8; 32]>, BlobError> {
    let sql = format!("SELECT DISTINCT h FROM ({source}) r WHERE h IS NOT NULL");
    let mut rows = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).fetch(pool);
    let mut refs = Vec::new();
    while let Some(h) = rows.try_next().await? {
        match parse_hash(&h) {
            Some(k) => refs.push(k),
            None => tracing::warn!(hash = %h, "fsck: ignoring a malformed content hash in the database"),
        }
    }
    refs.sort_unstable();
    refs.dedup();
    Ok(refs)
}

async fn is_referenced(pool: &PgPool, source: &str, sha256: &str) -> Result<bool, BlobError> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM ({source}) r WHERE h = $1)");
    Ok(sqlx::query_scalar(AssertSqlSafe(sql)).bind(sha256).fetch_one(pool).await?)
}

fn parse_hash(h: &str) -> Option<[u8; 32]> {
    super::check_hash(h).ok()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(h, &mut out).ok()?;
    Some(out)
}
