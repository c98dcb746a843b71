//! burn-down, latency and latency-load: scenarios with a `Worker` running (see `bench.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use spine_core::jobs::RetryPolicy;
use spine_pipeline::Supervisor;
use spine_pipeline::builtin::{self, NOOP};
use spine_pipeline::worker::{Handlers, Worker, WorkerConfig, WorkerStats};
use spine_store::Store;
use spine_store::queue::{self, NewJob};
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::bench::{Bench, Report, enqueue_one, latency_stats, rate, run_producers, sql};
use super::bench_enqueue::{secs, via_name};
use super::bench_probe::{Cpu, DbCounters};
use crate::error::CliError;

/// A kind only the benchmark has a handler for: it reports when it started.
pub const LATENCY_KIND: &str = "spine.bench.latency";

/// A worker running under its own supervisor, on its own pool of concurrency + 1 connections
/// (as the peer driver sizes graphile-worker's pool).
struct Running {
    supervisor: Supervisor,
    stats: Arc<WorkerStats>,
    pool: PgPool,
    concurrency: usize,
    claim_batch: usize,
}

impl Running {
    fn start(b: &Bench, handlers: Handlers, default_concurrency: usize) -> Self {
        let concurrency = b.args.concurrency.unwrap_or(default_concurrency);
        let pool = b.pool(concurrency as u32 + 1);
        let mut cfg = WorkerConfig::new(WorkerConfig::unique_id("bench"), concurrency).with_lease(b.lease);
        cfg.kinds = Some(handlers.kinds());
        if let Some(c) = b.args.claim_batch {
            cfg.claim_batch = c;
        }
        cfg.shutdown_grace = Duration::from_secs(5);
        let claim_batch = cfg.claim_batch;
        let worker = Worker::new(pool.clone(), Store::new(pool.clone()), handlers, cfg);
        let stats = worker.stats();
        let mut supervisor = Supervisor::new();
        supervisor.spawn("bench-worker", move |sd| worker.run(sd));
        Self { supervisor, stats, pool, concurrency, claim_batch }
    }

    async fn stop(self) {
        self.supervisor.shutdown().await;
        self.pool.close().await;
    }
}

/// Handlers: the built-in ones plus `LATENCY_KIND`, whose first act is to send
/// (payload "i", now) on the returned channel.
fn latency_handlers() -> (Handlers, mpsc::UnboundedReceiver<(i64, Instant)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handlers = builtin::handlers().register(LATENCY_KIND, RetryPolicy::default(), move |ctx| {
        let at = Instant::now();
        let _ = tx.send((ctx.payload["i"].as_i64().unwrap_or(i64::MIN), at));
        async { Ok(()) }
    });
    (handlers, rx)
}

/// N pre-inserted no-op jobs (enqueue_many, 5,000 a call), VACUUM ANALYZE, CHECKPOINT; then the
/// worker starts and the clock runs until it has committed every job's success (polled every
/// 20 ms, as the peer driver polls its database); then the database must show none unfinished.
pub(crate) async fn burn_down(b: &Bench) -> Result<Report, CliError> {
    let n = b.args.jobs.unwrap_or(100_000);
    let mut conn = b.main_pool().acquire().await.map_err(sql)?;
    let mut off = 0;
    while off < n {
        let end = (off + 5_000).min(n);
        let jobs: Vec<NewJob> = (off..end).map(|i| b.job(NOOP, i as i64)).collect();
        queue::enqueue_many(&mut conn, &jobs).await?;
        off = end;
    }
    drop(conn);
    sqlx::raw_sql("VACUUM ANALYZE qiserver.jobs").execute(b.main_pool()).await.map_err(sql)?;
    b.checkpoint().await;
    let postmaster = Cpu::postmaster(b.main_pool()).await;
    let db0 = DbCounters::read(b.main_pool()).await;
    let mut poller = b.poller().await?;
    let cpu0 = Cpu::snapshot(postmaster);
    let t0 = Instant::now();
    let w = Running::start(b, builtin::handlers(), b.default_concurrency);
    let deadline = t0 + Duration::from_secs(600);
    // The worker counts the successes it has committed; polled like the peer driver polls its
    // database (running jobs have no index to count them by: decision 0028). The database is
    // asked afterwards.
    while w.stats.snapshot().succeeded < n as u64 {
        if Instant::now() > deadline {
            w.stop().await;
            return Err(CliError::failed("burn-down timed out after 600 s with jobs still unfinished"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t0.elapsed();
    let cpu = Cpu::snapshot(postmaster).delta(&cpu0, n);
    if poller.any_unfinished().await? {
        w.stop().await;
        return Err(CliError::failed("the worker counted every job done but the database still has unfinished ones"));
    }
    let s = w.stats.snapshot();
    let (concurrency, claim_batch) = (w.concurrency, w.claim_batch);
    w.stop().await;
    poller.close().await;
    // Let the worker's backends report their statistics (they flush at exit).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let db = DbCounters::read(b.main_pool()).await.delta_async(&db0, b.main_pool(), n).await;
    let (succeeded, attempts): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM qiserver.jobs WHERE tenant_id = $1 AND state = 'succeeded'),
                (SELECT count(*) FROM qiserver.job_attempts WHERE tenant_id = $1)",
    )
    .bind(b.tenant.as_uuid())
    .fetch_one(b.main_pool())
    .await
    .map_err(sql)?;
    let jps = rate(n, took);
    let per = |x: u64| if x == 0 { 0.0 } else { ((s.claimed as f64 / x as f64) * 10.0).round() / 10.0 };
    let mut fields = json!({
        "n": n, "concurrency": concurrency, "claimBatch": claim_batch, "ms": took.as_millis() as u64,
        "seconds": secs(took), "jobsPerSec": jps, "succeeded": succeeded, "attemptRows": attempts,
        "claims": s.claims, "emptyClaims": s.empty_claims, "jobsPerClaim": per(s.claims),
        "flushes": s.flushes, "jobsPerFlush": per(s.flushes), "notifications": s.notifications,
    });
    merge(&mut fields, cpu);
    merge(&mut fields, db);
    Ok(Report {
        human: format!(
            "{n} jobs, concurrency {concurrency}, claim batch {claim_batch}: {:.2} s = {jps} jobs/s \
             ({} claims, {} flushes; {succeeded} succeeded, {attempts} attempt rows)",
            took.as_secs_f64(),
            s.claims,
            s.flushes
        ),
        fields,
    })
}

/// `--samples` serial samples on an idle worker: enqueue one job, wait until its handler
/// starts. Latency from just before the enqueue call, and from when it returned.
pub(crate) async fn latency(b: &Bench) -> Result<Report, CliError> {
    let samples = b.args.samples;
    let via = b.args.via;
    let (handlers, mut rx) = latency_handlers();
    let w = Running::start(b, handlers, b.default_concurrency);
    let producer = Store::new(b.pool(1));
    let job = |i: i64| NewJob::new(b.tenant, LATENCY_KIND, json!({ "i": i }));
    let wait_for = async |rx: &mut mpsc::UnboundedReceiver<(i64, Instant)>, id: i64| -> Result<Instant, CliError> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some((i, at))) if i == id => return Ok(at),
                Ok(Some(_)) => continue,
                Ok(None) => return Err(CliError::failed("the worker stopped")),
                Err(_) => return Err(CliError::failed(format!("job {id} was not picked up within 10 s"))),
            }
        }
    };
    let result = async {
        for i in 1..=100 {
            enqueue_one(&producer, via, &job(-i)).await?;
            wait_for(&mut rx, -i).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (mut lat, mut from_return, mut before_return) = (Vec::new(), Vec::new(), 0);
        for id in 0..samples as i64 {
            let j = job(id);
            let t0 = Instant::now();
            enqueue_one(&producer, via, &j).await?;
            let t1 = Instant::now();
            let at = wait_for(&mut rx, id).await?;
            lat.push(ms(at.saturating_duration_since(t0)));
            if at < t1 {
                before_return += 1;
            } else {
                from_return.push(ms(at - t1));
            }
        }
        Ok::<_, CliError>((lat, from_return, before_return))
    }
    .await;
    let concurrency = w.concurrency;
    w.stop().await;
    producer.pool().close().await;
    let (lat, from_return, before_return) = result?;
    let stats = latency_stats(&lat);
    let from_ret = latency_stats(&from_return);
    Ok(Report {
        human: format!(
            "{samples} serial samples, concurrency {concurrency}: p50 {} / p99 {} ms from before the enqueue call; \
             p50 {} / p99 {} ms from its return",
            stats["p50"], stats["p99"], from_ret["p50"], from_ret["p99"]
        ),
        fields: json!({
            "samples": samples, "concurrency": concurrency, "via": via_name(via), "p50Ms": stats["p50"],
            "p99Ms": stats["p99"], "latencyMs": stats, "latencyFromAddJobReturnMs": from_ret,
            "startedBeforeAddJobReturned": before_return,
        }),
    })
}

/// Open-loop producer: job i is due at start + i/rate; up to `--inflight` (16) enqueues in flight,
/// each producer on its own connection; the worker runs throughout.
pub(crate) async fn latency_load(b: &Bench) -> Result<Report, CliError> {
    let (target, seconds, via) = (b.args.rate, b.args.seconds, b.args.via);
    let producers_n = b.args.inflight.unwrap_or(16);
    let total = target as usize * seconds as usize;
    let (handlers, mut rx) = latency_handlers();
    let w = Running::start(b, handlers, b.default_concurrency);
    let producers = b.producers(producers_n);
    let tenant = b.tenant;
    let mk = move |i: i64| NewJob::new(tenant, LATENCY_KIND, json!({ "i": i }));
    let result = async {
        run_producers(&producers, 200, move |s, i| {
            let j = mk(-1 - i as i64);
            async move { enqueue_one(&s, via, &j).await }
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        // t0 of job i, as nanoseconds since `start` + 1 (0: not sent yet).
        let t0s: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
        let late = Arc::new(AtomicU64::new(0));
        let (t0c, latec) = (t0s.clone(), late.clone());
        run_producers(&producers, total, move |s, i| {
            let (t0s, late, j) = (t0c.clone(), latec.clone(), mk(i as i64));
            let due = start + Duration::from_secs_f64(i as f64 / target as f64);
            async move {
                let now = Instant::now();
                if due > now + Duration::from_millis(1) {
                    tokio::time::sleep_until(due.into()).await;
                } else if now > due + Duration::from_millis(50) {
                    late.fetch_add(1, Ordering::Relaxed);
                }
                t0s[i].store(start.elapsed().as_nanos() as u64 + 1, Ordering::Relaxed);
                enqueue_one(&s, via, &j).await
            }
        })
        .await?;
        let produced = start.elapsed();
        let mut lat = Vec::with_capacity(total);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while lat.len() < total {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, at))) if i >= 0 && (i as usize) < total => {
                    let t0 = t0s[i as usize].load(Ordering::Relaxed).saturating_sub(1);
                    lat.push(ms(at.saturating_duration_since(start)) - t0 as f64 / 1e6);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        Ok::<_, CliError>((lat, produced, start.elapsed(), late.load(Ordering::Relaxed)))
    }
    .await;
    let concurrency = w.concurrency;
    w.stop().await;
    for p in &producers {
        p.pool().close().await;
    }
    let (lat, produced, all, late) = result?;
    let stats = latency_stats(&lat);
    let achieved = rate(total, produced);
    Ok(Report {
        human: format!(
            "{target} jobs/s offered for {seconds} s (got {achieved}/s), concurrency {concurrency}: \
             p50 {} / p99 {} ms, {} of {total} handled",
            stats["p50"],
            stats["p99"],
            lat.len()
        ),
        fields: json!({
            "targetRate": target, "seconds": seconds, "concurrency": concurrency, "producers": producers_n,
            "via": via_name(via), "total": total, "handled": lat.len(), "achievedEnqueueRate": achieved,
            "endToEndRate": rate(lat.len(), all), "sendsMoreThan50msLate": late, "p50Ms": stats["p50"],
            "p99Ms": stats["p99"], "latencyMs": stats,
        }),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}
