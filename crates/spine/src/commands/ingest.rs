//! `spine ingest PATH...`: register files and folders (recursively) through the same pipeline
//! as uploads, with progress on stderr (files, bytes, rate) and a summary (`--json` for scripts).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use spine_core::ids::TenantId;
use spine_pipeline::register::Registrar;
use spine_store::Store;
use spine_store::repos::registration::Arrival;

use crate::commands::fsck::open_blobs;
use crate::config::Settings;
use crate::error::CliError;
use crate::output;

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files and folders (folders are walked recursively; dotfiles are skipped).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Tenant id or slug (default: the only tenant, when there is exactly one).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Import profile for every structured file instead of detection (see `spine profiles`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Print the result as JSON (one object with every file).
    #[arg(long)]
    pub json: bool,
}

/// The tenant named, or the only one.
pub async fn resolve_tenant(store: &Store, tenant: Option<&str>) -> Result<TenantId, CliError> {
    let mut tx = store.system_tx().await?;
    let found = match tenant {
        Some(t) => spine_store::repos::tenants::find(&mut tx, t)
            .await
            .map_err(|_| CliError::failed(format!("no tenant {t:?}")).hint("list tenants with `spine tenant list`"))?,
        None => {
            let mut all = spine_store::repos::tenants::list(&mut tx).await?;
            if all.len() != 1 {
                return Err(CliError::usage(format!("there are {} tenants: name one with --tenant", all.len())));
            }
            all.remove(0)
        }
    };
    tx.commit().await?;
    Ok(TenantId::from(found.id))
}

/// Every file under `path` with its size (one stat per file).
fn walk(path: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<(), CliError> {
    let meta = std::fs::metadata(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    if meta.is_file() {
        out.push((path.to_owned(), meta.len()));
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    entries.sort();
    for p in entries {
        walk(&p, out)?;
    }
    Ok(())
}

pub async fn run(store: &Store, settings: &Settings, args: IngestArgs) -> Result<bool, CliError> {
    if let Some(p) = &args.profile
        && spine_pipeline::profiles::by_name(p).is_none()
    {
        return Err(CliError::usage(format!("unknown profile {p:?}")).hint("list them with `spine profiles`"));
    }
    let tenant = resolve_tenant(store, args.tenant.as_deref()).await?;
    let mut files = Vec::new();
    for p in &args.paths {
        walk(p, &mut files)?;
    }
    let blobs = open_blobs(settings).await?;
    let registrar = Registrar::new(store.clone(), blobs, Some(settings.blobs.max_upload_bytes));
    let arrival = Arrival {
        ingress_kind: "manual",
        source_key: "cli".into(),
        source_display_name: "spine ingest (CLI)".into(),
        route: "spine ingest".into(),
        device_id: None,
        captured_by: format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())),
        profile: args.profile.clone(),
    };
    let total_bytes: u64 = files.iter().map(|(_, size)| size).sum();
    let mut progress = Progress::new(files.len(), total_bytes);
    let mut results = Vec::new();
    let (mut new, mut duplicates, mut failed) = (0u64, 0u64, 0u64);
    for (path, size) in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let outcome = match tokio::fs::File::open(path).await {
            Ok(f) => {
                let details = json!({"path": path.to_string_lossy()});
                registrar.register_one(tenant, &arrival, &name, details, f).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match &outcome {
            Ok(r) if r.duplicate => duplicates += 1,
            Ok(_) => new += 1,
            Err(_) => failed += 1,
        }
        progress.step(*size);
        results.push(match outcome {
            Ok(r) => json!({"path": path, "ok": true, "registered": r}),
            Err(e) => json!({"path": path, "ok": false, "error": e}),
        });
    }
    progress.finish();
    let elapsed = progress.started.elapsed().as_secs_f64().max(1e-9);
    let summary = json!({
        "files": files.len(), "registered": new, "duplicates": duplicates, "failed": failed,
        "bytes": total_bytes, "seconds": elapsed, "mb_per_s": total_bytes as f64 / 1e6 / elapsed,
    });
    if args.json {
        output::json(&json!({"summary": summary, "files": results}));
    } else {
        for r in &results {
            let path = r["path"].as_str().unwrap_or_default();
            match r["ok"].as_bool() {
                Some(true) => {
                    let reg = &r["registered"];
                    let what = if reg["duplicate"].as_bool() == Some(true) { "duplicate of" } else { "registered" };
                    output::text(&format!(
                        "{path}: {what} file {} v{} ({}, batch {})",
                        reg["file_id"].as_str().unwrap_or("-"),
                        reg["version"],
                        reg["media_type"].as_str().unwrap_or("-"),
                        reg["import_batch_id"].as_str().unwrap_or("-"),
                    ));
                }
                _ => output::text(&format!("{path}: FAILED: {}", r["error"].as_str().unwrap_or("?"))),
            }
        }
        output::text(&format!(
            "{} files: {new} registered, {duplicates} duplicates, {failed} failed; {:.1} MB in {elapsed:.1}s",
            files.len(),
            total_bytes as f64 / 1e6
        ));
    }
    Ok(failed == 0)
}

/// Progress on stderr: a redrawn line on a terminal, a line every few seconds otherwise.
struct Progress {
    files: usize,
    bytes: u64,
    done_files: usize,
    done_bytes: u64,
    started: Instant,
    last: Instant,
    tty: bool,
}

impl Progress {
    fn new(files: usize, bytes: u64) -> Self {
        let now = Instant::now();
        Self {
            files,
            bytes,
            done_files: 0,
            done_bytes: 0,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn step(&mut self, bytes: u64) {
        self.done_files += 1;
        self.done_bytes += bytes;
        let every = if self.tty { Duration::from_millis(100) } else { Duration::from_secs(5) };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.draw();
        }
    }

    fn draw(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "{}/{} files, {:.1}/{:.1} MB, {:.1} MB/s",
            self.done_files,
            self.files,
            self.done_bytes as f64 / 1e6,
            self.bytes as f64 / 1e6,
            self.done_bytes as f64 / 1e6 / secs
        );
        let mut err = std::io::stderr();
        let _ = if self.tty { write!(err, "\r{line}  ") } else { writeln!(err, "{line}") };
    }

    fn finish(&self) {
        if self.tty && self.files > 0 {
            self.draw();
            let _ = writeln!(std::io::stderr());
        }
    }
}
