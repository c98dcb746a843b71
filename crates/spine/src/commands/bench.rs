//! `spine bench queue <scenario>`: the job queue measured the way the graphile-worker driver in
//! `../shared/bench-peers/` measures its peers (same job counts, batch sizes, in-flight counts,
//! clock points), against whatever database Spine is configured for. Each run prints a human line
//! and one `RESULT {json}` line (the peer driver's field names where they exist).
//!
//! Jobs belong to the tenant `bench` (created when missing). Every scenario first deletes that
//! tenant's jobs and attempts; `--reset` truncates `qiserver.jobs` and `qiserver.job_attempts`
//! instead, for a database used only for benchmarks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};
use spine_core::ids::TenantId;
use spine_store::queue::{self, NewJob};
use spine_store::{Store, StoreError};
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions, PgPool};
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::error::CliError;
use crate::output;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N jobs, one enqueue (its own commit) per job, `--inflight` producers with a connection each.
    EnqueueSingle,
    /// N jobs through `enqueue_many` in batches of `--batch`.
    EnqueueBatch,
    /// N pre-inserted `spine.noop` jobs; time from worker start until none is unfinished.
    BurnDown,
    /// `--samples` serial jobs on an idle worker: enqueue, wait until the handler starts.
    Latency,
    /// Open-loop producer at `--rate` jobs/s for `--seconds` with the worker running.
    LatencyLoad,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::EnqueueSingle => "enqueue-single",
            Scenario::EnqueueBatch => "enqueue-batch",
            Scenario::BurnDown => "burn-down",
            Scenario::Latency => "latency",
            Scenario::LatencyLoad => "latency-load",
        }
    }

    /// The peer driver's command name for the same measurement.
    fn peer_cmd(self) -> &'static str {
        match self {
            Scenario::BurnDown => "process",
            other => other.name(),
        }
    }
}

/// How a producer's enqueue commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// `queue::enqueue` on a plain connection: the INSERT commits on its own (like `addJob`).
    Autocommit,
    /// `Store::tenant_tx` (role spine_app, RLS) + `queue::enqueue` + commit: how Spine code enqueues.
    Tenant,
}

#[derive(Args, Debug)]
pub struct QueueArgs {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Jobs (default: enqueue-single 5,000 with one in flight, else 20,000; enqueue-batch and
    /// burn-down 100,000).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Worker concurrency for burn-down, latency and latency-load (default: jobs.concurrency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Most jobs per claim (default: the worker's own default).
    #[arg(long)]
    pub claim_batch: Option<usize>,
    /// enqueue-batch: jobs per `enqueue_many` call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Producers in flight, each with its own connection (enqueue-single: 1; latency-load: 16).
    #[arg(long)]
    pub inflight: Option<usize>,
    /// latency-load: offered jobs per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// latency-load: how long to offer load, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// latency: serial samples.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// How single enqueues commit.
    #[arg(long, value_enum, default_value_t = Via::Autocommit)]
    pub via: Via,
    /// TRUNCATE qiserver.jobs and qiserver.job_attempts first (a database used only for benchmarks).
    #[arg(long)]
    pub reset: bool,
    /// Print only the result object (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What every scenario needs.
pub(crate) struct Bench {
    pub(crate) args: QueueArgs,
    pool: PgPool,
    pub(crate) tenant: TenantId,
    pub(crate) default_concurrency: usize,
    pub(crate) lease: Duration,
}

/// A measurement: fields for the RESULT line and a sentence for people.
pub(crate) struct Report {
    pub(crate) fields: Value,
    pub(crate) human: String,
}

pub(crate) fn sql(e: sqlx::Error) -> CliError {
    CliError::from(StoreError::from(e))
}

pub async fn queue(pool: &PgPool, settings: &Settings, args: QueueArgs) -> Result<(), CliError> {
    if args.batch == 0 || args.samples == 0 || args.rate == 0 || args.seconds == 0 {
        return Err(CliError::usage("--batch, --samples, --rate and --seconds must be at least 1"));
    }
    if args.jobs == Some(0) || args.concurrency == Some(0) || args.inflight == Some(0) || args.claim_batch == Some(0) {
        return Err(CliError::usage("--jobs, --concurrency, --inflight and --claim-batch must be at least 1"));
    }
    let store = Store::new(pool.clone());
    let tenant = bench_tenant(&store).await?;
    let b = Bench {
        args,
        pool: pool.clone(),
        tenant,
        default_concurrency: settings.jobs.concurrency.max(1),
        lease: Duration::from_secs(settings.jobs.lease_secs.max(1)),
    };
    b.clear().await?;
    let scenario = b.args.scenario;
    tracing::info!(scenario = scenario.name(), "queue benchmark starting");
    let report = match scenario {
        Scenario::EnqueueSingle => super::bench_enqueue::single(&b).await?,
        Scenario::EnqueueBatch => super::bench_enqueue::batch(&b).await?,
        Scenario::BurnDown => super::bench_worker::burn_down(&b).await?,
        Scenario::Latency => super::bench_worker::latency(&b).await?,
        Scenario::LatencyLoad => super::bench_worker::latency_load(&b).await?,
    };
    let mut out = Map::new();
    out.insert("peer".into(), json!("spine"));
    out.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    out.insert("cmd".into(), json!(scenario.peer_cmd()));
    out.insert("scenario".into(), json!(scenario.name()));
    if let Value::Object(fields) = report.fields {
        out.extend(fields);
    }
    out.insert("loadavg1".into(), json!(loadavg()));
    let out = Value::Object(out);
    if b.args.json {
        output::text(&out.to_string());
    } else {
        output::text(&format!("{}: {}", scenario.name(), report.human));
        output::text(&format!("RESULT {out}"));
    }
    Ok(())
}

/// The `bench` tenant's id, creating the tenant when missing.
async fn bench_tenant(store: &Store) -> Result<TenantId, CliError> {
    let mut tx = store.system_tx().await?;
    let found = spine_store::repos::tenants::find(&mut tx, "bench").await;
    tx.commit().await?;
    match found {
        Ok(t) => Ok(TenantId(t.id)),
        Err(StoreError::NotFound) => {
            let t = super::admin::tenant_create(store, "bench", Some("Queue benchmarks"), false).await?;
            Ok(TenantId(t.id))
        }
        Err(e) => Err(e.into()),
    }
}

impl Bench {
    /// A fresh pool of `n` connections to the configured database (opened on first use).
    pub(crate) fn pool(&self, n: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(n.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with((*self.pool.connect_options()).clone())
    }

    /// `n` stores, each on a pool of exactly one connection (producers that do not share one).
    pub(crate) fn producers(&self, n: usize) -> Vec<Store> {
        (0..n).map(|_| Store::new(self.pool(1))).collect()
    }

    /// The configured pool (setup, polling).
    pub(crate) fn main_pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn job(&self, kind: &str, i: i64) -> NewJob {
        NewJob::new(self.tenant, kind, json!({ "i": i }))
    }

    /// Deletes the bench tenant's jobs (or, with --reset, every job), then VACUUM ANALYZE.
    pub(crate) async fn clear(&self) -> Result<(), CliError> {
        if self.args.reset {
            sqlx::raw_sql("TRUNCATE qiserver.jobs, qiserver.job_attempts CASCADE")
                .execute(&self.pool)
                .await
                .map_err(sql)?;
        } else {
            self.delete_jobs().await?;
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM qiserver.jobs WHERE state IN ('queued', 'running', 'failed') AND tenant_id <> $1",
            )
            .bind(self.tenant.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(sql)?;
            if others > 0 {
                tracing::warn!(others, "other tenants have unfinished jobs: the figures will include their work");
            }
        }
        sqlx::raw_sql("VACUUM ANALYZE qiserver.jobs, qiserver.job_attempts").execute(&self.pool).await.map_err(sql)?;
        Ok(())
    }

    /// Deletes the bench tenant's jobs and attempts (between warm-up and the timed part).
    pub(crate) async fn delete_jobs(&self) -> Result<(), CliError> {
        let t = self.tenant.as_uuid();
        sqlx::query("DELETE FROM qiserver.job_attempts WHERE tenant_id = $1")
            .bind(t)
            .execute(&self.pool)
            .await
            .map_err(sql)?;
        sqlx::query("DELETE FROM qiserver.jobs WHERE tenant_id = $1").bind(t).execute(&self.pool).await.map_err(sql)?;
        Ok(())
    }

    /// CHECKPOINT, so a pending checkpoint does not land in the timed part (needs superuser or
    /// pg_checkpoint; skipped with a warning otherwise).
    pub(crate) async fn checkpoint(&self) {
        if let Err(e) = sqlx::raw_sql("CHECKPOINT").execute(&self.pool).await {
            tracing::warn!(error = %e, "CHECKPOINT failed; timing without it");
        }
    }

    /// A connection that answers "is any bench job unfinished?" (after the timing: running jobs
    /// have no index of their own, decision 0028). Sequential scans are off on this connection so
    /// the ready jobs are looked up through jobs_claimable.
    pub(crate) async fn poller(&self) -> Result<Poller, CliError> {
        let mut conn = self.pool.connect_options().connect().await.map_err(sql)?;
        sqlx::raw_sql("SET enable_seqscan = off").execute(&mut conn).await.map_err(sql)?;
        Ok(Poller { conn, tenant: self.tenant })
    }

    pub(crate) async fn rows_in_table(&self) -> Result<i64, CliError> {
        sqlx::query_scalar("SELECT count(*) FROM qiserver.jobs WHERE tenant_id = $1")
            .bind(self.tenant.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(sql)
    }
}

pub(crate) struct Poller {
    conn: sqlx::PgConnection,
    tenant: TenantId,
}

impl Poller {
    pub(crate) async fn any_unfinished(&mut self) -> Result<bool, CliError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM qiserver.jobs WHERE claimable_at IS NOT NULL AND tenant_id = $1)
                 OR EXISTS (SELECT 1 FROM qiserver.jobs WHERE state = 'running' AND tenant_id = $1)",
        )
        .bind(self.tenant.as_uuid())
        .fetch_one(&mut self.conn)
        .await
        .map_err(sql)
    }

    pub(crate) async fn close(self) {
        let _ = sqlx::Connection::close(self.conn).await;
    }
}

/// One enqueue, committed the way `via` says.
pub(crate) async fn enqueue_one(store: &Store, via: Via, job: &NewJob) -> Result<(), StoreError> {
    match via {
        Via::Autocommit => {
            let mut conn = store.pool().acquire().await?;
            queue::enqueue(&mut conn, job).await?;
        }
        Via::Tenant => {
            let mut tx = store.tenant_tx(job.tenant).await?;
            queue::enqueue(tx.conn(), job).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Calls `f(store, i)` for i in 0..total with one task per store: at most `stores.len()` calls
/// outstanding, each producer on its own connection.
pub(crate) async fn run_producers<F, Fut>(stores: &[Store], total: usize, f: F) -> Result<(), CliError>
where
    F: Fn(Store, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for s in stores.iter().take(total.max(1)) {
        let (f, next, s) = (f.clone(), next.clone(), s.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), StoreError>(());
                }
                f(s.clone(), i).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| CliError::failed(format!("a producer task failed: {e}")))??;
    }
    Ok(())
}

/// Jobs per second, rounded like the peer driver's `rate`.
pub(crate) fn rate(count: usize, d: Duration) -> i64 {
    (count as f64 / d.as_secs_f64().max(1e-9)).round() as i64
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The peer driver's `latencyStats` (nearest-rank percentiles, ms rounded to 0.01).
pub(crate) fn latency_stats(samples_ms: &[f64]) -> Value {
    if samples_ms.is_empty() {
        return Value::Null;
    }
    let mut s = samples_ms.to_vec();
    s.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let idx = ((p / 100.0) * s.len() as f64).ceil() as usize;
        s[idx.saturating_sub(1).min(s.len() - 1)]
    };
    let avg = s.iter().sum::<f64>() / s.len() as f64;
    json!({
        "n": s.len(), "min": round2(s[0]), "p50": round2(pct(50.0)), "p90": round2(pct(90.0)),
        "p99": round2(pct(99.0)), "max": round2(s[s.len() - 1]), "avg": round2(avg),
    })
}

fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}
