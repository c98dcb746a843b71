//! enqueue-single and enqueue-batch (see `bench.rs`).

use std::time::Instant;

use serde_json::json;
use spine_pipeline::builtin::NOOP;
use spine_store::Store;
use spine_store::queue::{self, NewJob};

use super::bench::{Bench, Report, Via, enqueue_one, rate, run_producers, sql};
use crate::error::CliError;

/// N jobs, each its own enqueue and commit, `--inflight` producers on their own connections.
/// Warm-up: 200 jobs, deleted before timing (as the peer driver does).
pub(crate) async fn single(b: &Bench) -> Result<Report, CliError> {
    let inflight = b.args.inflight.unwrap_or(1);
    let n = b.args.jobs.unwrap_or(if inflight == 1 { 5_000 } else { 20_000 });
    let via = b.args.via;
    let producers = b.producers(inflight);
    let tenant = b.tenant;
    // Job i gets payload {"i": sign * (i + offset)}: negative ids for the warm-up.
    let enqueue = move |sign: i64, offset: i64| {
        move |store: Store, i: usize| {
            let job = NewJob::new(tenant, NOOP, json!({ "i": sign * (i as i64 + offset) }));
            async move { enqueue_one(&store, via, &job).await }
        }
    };
    run_producers(&producers, 200, enqueue(-1, 1)).await?;
    b.delete_jobs().await?;
    b.checkpoint().await;
    let t0 = Instant::now();
    run_producers(&producers, n, enqueue(1, 0)).await?;
    let took = t0.elapsed();
    let left = b.rows_in_table().await?;
    for p in &producers {
        p.pool().close().await;
    }
    let jps = rate(n, took);
    Ok(Report {
        fields: json!({
            "n": n, "inflight": inflight, "via": via_name(via), "ms": took.as_millis() as u64,
            "seconds": secs(took), "jobsPerSec": jps, "rowsInTable": left,
        }),
        human: format!(
            "{n} jobs, {inflight} in flight, {}: {:.2} s = {jps} jobs/s ({left} rows)",
            via_name(via),
            took.as_secs_f64()
        ),
    })
}

/// N jobs through `queue::enqueue_many` in batches of `--batch` on one connection. Warm-up: one
/// batch, deleted before timing.
pub(crate) async fn batch(b: &Bench) -> Result<Report, CliError> {
    let n = b.args.jobs.unwrap_or(100_000);
    let size = b.args.batch;
    let via = b.args.via;
    let store = Store::new(b.pool(1));
    let make = |from: usize, to: usize| -> Vec<NewJob> { (from..to).map(|i| b.job(NOOP, i as i64)).collect() };
    let warm: Vec<NewJob> = (0..size.min(n)).map(|i| b.job(NOOP, -(i as i64) - 1)).collect();
    send_many(&store, via, &warm).await?;
    b.delete_jobs().await?;
    b.checkpoint().await;
    let t0 = Instant::now();
    let mut off = 0;
    while off < n {
        let end = (off + size).min(n);
        send_many(&store, via, &make(off, end)).await?;
        off = end;
    }
    let took = t0.elapsed();
    let left = b.rows_in_table().await?;
    store.pool().close().await;
    let jps = rate(n, took);
    Ok(Report {
        fields: json!({
            "n": n, "batch": size, "via": via_name(via), "ms": took.as_millis() as u64, "seconds": secs(took),
            "jobsPerSec": jps, "rowsInTable": left,
        }),
        human: format!(
            "{n} jobs in batches of {size}, {}: {:.2} s = {jps} jobs/s ({left} rows)",
            via_name(via),
            took.as_secs_f64()
        ),
    })
}

async fn send_many(store: &Store, via: Via, jobs: &[NewJob]) -> Result<(), CliError> {
    let Some(first) = jobs.first() else { return Ok(()) };
    match via {
        Via::Autocommit => {
            let mut conn = store.pool().acquire().await.map_err(sql)?;
            queue::enqueue_many(&mut conn, jobs).await?;
        }
        Via::Tenant => {
            let mut tx = store.tenant_tx(first.tenant).await?;
            queue::enqueue_many(tx.conn(), jobs).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

pub(crate) fn via_name(via: Via) -> &'static str {
    match via {
        Via::Autocommit => "autocommit",
        Via::Tenant => "tenant-tx",
    }
}

pub(crate) fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
