//! `spine bench blobs`: every file under `--dir` through `BlobStore::put`, one after another, as
//! the upload path will do it. Prints bytes, time, throughput and the process's memory: resident
//! set at the start and its peak (VmHWM) at the end, so the growth a put costs is visible.
//! `bench/blobs.sh` runs it beside `sha256sum` + `cp` of the same files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde_json::json;
use spine_store::blob::{BlobConfig, BlobStore};

use crate::commands::fsck::{blob_config, blob_error};
use crate::config::Settings;
use crate::error::CliError;
use crate::output;

#[derive(Args, Debug)]
pub struct BlobsArgs {
    /// Directory whose files (recursively) are stored.
    #[arg(long)]
    pub dir: PathBuf,
    /// Local blob store root to write to (default: the configured blob store).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Print only the RESULT object.
    #[arg(long)]
    pub json: bool,
}

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| CliError::usage(format!("reading {}: {e}", d.display())))?;
        for entry in rd {
            let entry = entry.map_err(|e| CliError::failed(format!("reading {}: {e}", d.display())))?;
            let ft = entry.file_type().map_err(|e| CliError::failed(e.to_string()))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub async fn run(settings: &Settings, args: BlobsArgs) -> Result<std::process::ExitCode, CliError> {
    let rss_start = proc_status_kib("VmRSS");
    let config = match &args.root {
        Some(root) => BlobConfig::Local { root: root.clone() },
        None => blob_config(settings)?,
    };
    let store = BlobStore::from_config(&config).await.map_err(blob_error)?;
    let files = files_under(&args.dir)?;
    let (mut bytes, mut created) = (0u64, 0u64);
    let started = Instant::now();
    for f in &files {
        let file =
            tokio::fs::File::open(f).await.map_err(|e| CliError::failed(format!("opening {}: {e}", f.display())))?;
        let put = store.put(file, None).await.map_err(blob_error)?;
        bytes += put.size;
        created += u64::from(put.created);
    }
    let secs = started.elapsed().as_secs_f64();
    let hwm = proc_status_kib("VmHWM");
    let mb_s = bytes as f64 / 1e6 / secs.max(1e-9);
    let result = json!({
        "store": store.describe(),
        "files": files.len(),
        "blobs_created": created,
        "bytes": bytes,
        "seconds": secs,
        "mb_per_s": mb_s,
        "rss_start_kib": rss_start,
        "rss_peak_kib": hwm,
        "rss_growth_kib": hwm.saturating_sub(rss_start),
    });
    if !args.json {
        eprintln!(
            "blobs: {} files, {:.1} MB in {secs:.2} s = {mb_s:.1} MB/s; RSS {} KiB at start, peak {} KiB (growth {} KiB)",
            files.len(),
            bytes as f64 / 1e6,
            rss_start,
            hwm,
            hwm.saturating_sub(rss_start)
        );
    }
    output::text(&format!("RESULT {result}"));
    Ok(std::process::ExitCode::SUCCESS)
}
