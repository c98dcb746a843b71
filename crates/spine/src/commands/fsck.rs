//! `spine fsck`: re-hash every blob and compare the store with the files that reference it.
//! Progress (blobs and bytes checked) goes to stderr every few seconds; the report to stdout.

use std::time::{Duration, Instant};

use clap::Args;
use spine_store::blob::{BlobConfig, BlobError, BlobStore, FsckOptions, FsckReport, S3Config, fsck};
use sqlx::PgPool;

use crate::config::{BlobBackend, Settings};
use crate::error::CliError;
use crate::output;

#[derive(Args, Debug)]
pub struct FsckArgs {
    /// Remove orphans older than the grace period and stale temp data (never a referenced blob).
    #[arg(long)]
    pub repair: bool,
    /// Orphans younger than this many seconds are left alone (an upload may be about to register them).
    #[arg(long, default_value_t = 86_400)]
    pub grace_secs: u64,
    #[arg(long)]
    pub json: bool,
}

/// The blob store's configuration from the settings.
pub fn blob_config(settings: &Settings) -> Result<BlobConfig, CliError> {
    let b = &settings.blobs;
    match b.backend {
        BlobBackend::Local => {
            Ok(BlobConfig::Local { root: b.root.clone().unwrap_or_else(|| settings.data_dir.join("blobs")) })
        }
        BlobBackend::S3 => {
            let s3 = b.s3.as_ref().ok_or_else(|| {
                CliError::config("blobs.backend is s3 but blobs.s3 is not set")
                    .hint("set blobs.s3.bucket (and endpoint, keys)")
            })?;
            Ok(BlobConfig::S3(S3Config {
                bucket: s3.bucket.clone(),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                access_key_id: s3.access_key_id.clone(),
                secret_access_key: s3.secret_access_key.clone(),
                allow_http: s3.allow_http,
            }))
        }
    }
}

/// The configured blob store, opened.
pub async fn open_blobs(settings: &Settings) -> Result<BlobStore, CliError> {
    BlobStore::from_config(&blob_config(settings)?).await.map_err(blob_error)
}

pub fn blob_error(e: BlobError) -> CliError {
    match e {
        BlobError::Config(m) => CliError::config(m),
        other => CliError::failed(other.to_string()),
    }
}

/// Runs the check; false when problems remain (exit code 1).
pub async fn run(pool: &PgPool, settings: &Settings, args: FsckArgs) -> Result<bool, CliError> {
    let blobs = BlobStore::from_config(&blob_config(settings)?).await.map_err(blob_error)?;
    let opts = FsckOptions { repair: args.repair, grace: Duration::from_secs(args.grace_secs), ..Default::default() };
    let started = Instant::now();
    let mut last = Instant::now();
    let report = fsck(pool, &blobs, &opts, |p| {
        if last.elapsed() >= Duration::from_secs(2) {
            last = Instant::now();
            eprintln!("fsck: {} blobs, {} checked ({:.0?})", p.blobs, mib(p.bytes), started.elapsed());
        }
    })
    .await
    .map_err(blob_error)?;
    if args.json {
        output::json(&report);
    } else {
        output::text(&render(&report));
    }
    Ok(report.unresolved() == 0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn render(r: &FsckReport) -> String {
    let mut out = format!(
        "{}: {} blobs ({}) re-hashed, {} referenced hashes\n",
        r.store,
        r.blobs_checked,
        mib(r.bytes_checked),
        r.referenced
    );
    for h in &r.missing {
        out.push_str(&format!("missing   {h} (referenced, not in the store)\n"));
    }
    for c in &r.corrupt {
        let refd = if c.referenced { "referenced" } else { "unreferenced" };
        out.push_str(&format!("corrupt   {} ({refd}): {}\n", c.sha256, c.detail));
    }
    for o in &r.orphans {
        let what = match (o.removed, o.past_grace) {
            (true, _) => "removed",
            (false, true) => "past the grace period",
            (false, false) => "within the grace period",
        };
        out.push_str(&format!("orphan    {} {} bytes, {} s old, {what}\n", o.sha256, o.size, o.age_secs));
    }
    for t in &r.stale_temp {
        let what = if r.repair { "removed" } else { "stale" };
        out.push_str(&format!("temp      {} {} bytes, {what}\n", t.name, t.size));
    }
    match r.unresolved() {
        0 => out.push_str("ok: no problems\n"),
        n if r.repair => {
            out.push_str(&format!("{n} problems remain (missing or corrupt blobs need the original content)\n"))
        }
        n => out.push_str(&format!("{n} problems; `spine fsck --repair` removes old orphans and stale temp data\n")),
    }
    out
}
