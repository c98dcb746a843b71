//! `spine bench staging --file F`: stages a CSV (or JSON) file through the staging parser and
//! COPY loader, as an upload would, in one tenant transaction, and prints rows/s and one
//! `RESULT {json}`. bench/staging.sh puts the figure beside `psql \copy` of the same file.
//!
//! It works in its own tenant (`bench-staging`) with a fresh file and batch per run, and deletes
//! the staged rows afterwards (outside the timing) unless `--keep`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use spine_core::ids::TenantId;
use spine_pipeline::staging::{ParseOptions, parse, stage};
use spine_store::Store;
use spine_store::repos::staging::{COPY_CHUNK_BYTES, RowEncoder, StagingTarget};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::CliError;
use crate::output;

const TENANT: &str = "bench-staging";

#[derive(Args, Debug)]
pub struct StagingArgs {
    /// The file to stage.
    #[arg(long)]
    pub file: PathBuf,
    /// Leave the staged rows in place.
    #[arg(long)]
    pub keep: bool,
    /// Only parse the file and encode its rows for COPY, as the staging parser thread does, and
    /// print that rate: the client's share of a load, without the database.
    #[arg(long)]
    pub parse_only: bool,
}

fn sql(e: sqlx::Error) -> CliError {
    CliError::failed(format!("database: {e}"))
}

pub async fn run(pool: &PgPool, args: StagingArgs) -> Result<(), CliError> {
    let meta = std::fs::metadata(&args.file).map_err(|e| CliError::usage(format!("{}: {e}", args.file.display())))?;
    if args.parse_only {
        return parse_only(&args, meta.len());
    }
    let (tenant, batch, file) = prepare(pool, &args, meta.len()).await?;
    let store = Store::new(pool.clone());
    let input =
        std::fs::File::open(&args.file).map_err(|e| CliError::failed(format!("{}: {e}", args.file.display())))?;
    let started = Instant::now();
    let mut tx = store.tenant_tx(tenant).await?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(tx.conn()).await.map_err(sql)?;
    let (server_cpu0, client_cpu0) = (cpu_secs(&backend.to_string()), cpu_secs("self"));
    let report =
        stage(&mut tx, batch, file, std::io::BufReader::with_capacity(256 * 1024, input), ParseOptions::default())
            .await
            .map_err(|e| CliError::failed(format!("staging failed: {e}")))?;
    let server_cpu = cpu_secs(&backend.to_string()).zip(server_cpu0).map(|(b, a)| b - a);
    tx.commit().await?;
    let secs = started.elapsed().as_secs_f64();
    let client_cpu = cpu_secs("self").zip(client_cpu0).map(|(b, a)| b - a);
    let rows = report.counts.rows_total;
    let rate = rows as f64 / secs;
    let cpu = match (server_cpu, client_cpu) {
        (Some(server), Some(client)) => format!(" (CPU: server backend {server:.2} s, spine {client:.2} s)"),
        _ => String::new(),
    };
    output::text(&format!(
        "staged {rows} rows ({} ok, {} with errors) of {} MB in {secs:.2} s = {rate:.0} rows/s, {:.1} MB/s{cpu}",
        report.counts.rows_ok,
        report.counts.rows_error,
        meta.len() / 1_000_000,
        meta.len() as f64 / 1e6 / secs
    ));
    if !args.keep {
        sqlx::query("DELETE FROM staging.import_rows WHERE import_batch_id = $1")
            .bind(batch)
            .execute(pool)
            .await
            .map_err(sql)?;
    }
    let result = json!({
        "bench": "staging",
        "file": args.file.display().to_string(),
        "bytes": meta.len(),
        "rows": rows,
        "rows_ok": report.counts.rows_ok,
        "rows_error": report.counts.rows_error,
        "seconds": secs,
        "rows_per_sec": rate,
        "server_cpu_secs": server_cpu,
        "client_cpu_secs": client_cpu,
        "encoding": report.summary.encoding,
        "format": report.summary.format,
    });
    output::text(&format!("RESULT {result}"));
    Ok(())
}

/// References written into `--parse-only`'s rows (nothing is loaded).
const BENCH_TARGET: StagingTarget =
    StagingTarget { tenant_id: Uuid::nil(), import_batch_id: Uuid::nil(), source_file_id: Uuid::nil() };

/// `--parse-only`: the parser thread's work (parse, encode for COPY) on this thread, timed.
fn parse_only(args: &StagingArgs, bytes: u64) -> Result<(), CliError> {
    let input =
        std::fs::File::open(&args.file).map_err(|e| CliError::failed(format!("{}: {e}", args.file.display())))?;
    let (started, cpu0) = (Instant::now(), cpu_secs("self"));
    let mut rows = parse(std::io::BufReader::with_capacity(256 * 1024, input), &ParseOptions::default())
        .map_err(|e| CliError::failed(format!("parsing failed: {e}")))?;
    let (mut encoder, mut encoded) = (RowEncoder::new(BENCH_TARGET), 0u64);
    while let Some(step) = rows.encode_next(&mut encoder) {
        step.map_err(|e| CliError::failed(format!("parsing failed: {e}")))?;
        if encoder.len() >= COPY_CHUNK_BYTES {
            encoded += encoder.take().len() as u64;
        }
    }
    encoded += encoder.take().len() as u64;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs("self").zip(cpu0).map(|(b, a)| b - a);
    let summary = rows.into_summary();
    let total = summary.rows_ok + summary.rows_error;
    output::text(&format!(
        "parsed and encoded {total} rows of {} MB in {secs:.2} s = {:.0} rows/s ({encoded} bytes of COPY data)",
        bytes / 1_000_000,
        total as f64 / secs
    ));
    let result = json!({
        "bench": "staging-parse",
        "file": args.file.display().to_string(),
        "bytes": bytes,
        "rows": total,
        "seconds": secs,
        "rows_per_sec": total as f64 / secs,
        "client_cpu_secs": cpu,
        "copy_bytes": encoded,
    });
    output::text(&format!("RESULT {result}"));
    Ok(())
}

/// The benchmark tenant (made once), a source, and a new file and batch for this run.
async fn prepare(pool: &PgPool, args: &StagingArgs, size: u64) -> Result<(TenantId, Uuid, Uuid), CliError> {
    sqlx::query(
        "INSERT INTO core.tenants (id, slug, display_name) VALUES (gen_random_uuid(), $1, 'Staging benchmark') \
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(TENANT)
    .execute(pool)
    .await
    .map_err(sql)?;
    let tenant: Uuid = sqlx::query_scalar("SELECT id FROM core.tenants WHERE slug = $1")
        .bind(TENANT)
        .fetch_one(pool)
        .await
        .map_err(sql)?;
    sqlx::query(
        "INSERT INTO qinexus.sources (tenant_id, source_key, source_kind, display_name) \
         VALUES ($1, 'bench', 'manual', 'Benchmark') ON CONFLICT (tenant_id, source_key) DO NOTHING",
    )
    .bind(tenant)
    .execute(pool)
    .await
    .map_err(sql)?;
    let source: Uuid =
        sqlx::query_scalar("SELECT id FROM qinexus.sources WHERE tenant_id = $1 AND source_key = 'bench'")
            .bind(tenant)
            .fetch_one(pool)
            .await
            .map_err(sql)?;
    // A file is unique per (tenant, source, name): every run registers a new one.
    let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bench".into());
    let name = format!("{name}#{}", Uuid::now_v7().simple());
    let file: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.files (tenant_id, source_id, original_name, storage_name, content_sha256, size_bytes, media_type) \
         VALUES ($1, $2, $3, $3, repeat('0', 64), $4, 'text/csv') RETURNING id",
    )
    .bind(tenant)
    .bind(source)
    .bind(&name)
    .bind(i64::try_from(size).unwrap_or(i64::MAX))
    .fetch_one(pool)
    .await
    .map_err(sql)?;
    // Registration gives batches version 7 ids (ascending in time), and so does this: a load's
    // (batch, row number) keys then go to the right edge of that index, as they do for uploads.
    let batch: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.import_batches (id, tenant_id, source_id) VALUES ($3, $1, $2) RETURNING id",
    )
    .bind(tenant)
    .bind(source)
    .bind(Uuid::now_v7())
    .fetch_one(pool)
    .await
    .map_err(sql)?;
    Ok((TenantId::from(tenant), batch, file))
}

/// User + system CPU seconds of a process from `/proc/<pid>/stat` (Linux; the server's backend
/// only when it runs on this machine and is readable: another pid's process is not a `postgres`
/// one), at the usual 100 ticks per second.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if pid != "self" && !stat.contains("(postgres)") {
        return None;
    }
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
