//! The rate limiter's ceiling (decision 0024) beside the raw SQL it is built on: acquires per
//! second from 8 tasks, each on a pool of its own (8 "worker processes"), for BENCH_SECS (default
//! 5) per phase, on the test kit's private cluster (or $DATABASE_URL's server via the kit).
//!
//! Phases: one connection with limit 600 per 1 s window (mostly admissions, a full log); one
//! connection with 600 per 60 s (every call a hit once 600 are in); 8 connections, one per task (no
//! row contention). Baseline: the same 8 tasks each incrementing a counter on one shared row (and
//! on 8 rows) with `synchronous_commit = off`, the cost of the row lock alone.
//!
//!   cargo bench -p spine-pipeline --bench rate_limit      (bench/rate_limit.sh)

// Printing the figures is what a benchmark is for.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use spine_core::ids::TenantId;
use spine_store::Store;
use spine_store::repos::rate_limits;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

const TASKS: usize = 8;

/// Runs `op(task)` on every task until the deadline; returns operations per second.
async fn rate<F, Fut>(secs: f64, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    op(i).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / secs
}

async fn connection(pool: &PgPool, t: TenantId, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO qiconnect.connections (tenant_id, connector_type, name) VALUES ($1, 'http_json', $2) RETURNING id",
    )
    .bind(t.as_uuid())
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let db = spine_testkit::test_db().await;
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name, integrations_enabled) VALUES ($1, 'b', 'B', true)")
        .bind(t.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let shared = connection(&db.pool, t, "shared").await;
    let mut own = Vec::new();
    for i in 0..TASKS {
        own.push(connection(&db.pool, t, &format!("own-{i}")).await);
    }
    let mut pools = Vec::new();
    for _ in 0..TASKS {
        pools.push(PgPoolOptions::new().max_connections(1).connect_with(db.options.clone()).await.unwrap());
    }
    sqlx::raw_sql("CREATE TABLE bench_counter (id int PRIMARY KEY, n bigint NOT NULL); INSERT INTO bench_counter SELECT g, 0 FROM generate_series(0, 7) g")
        .execute(&db.pool)
        .await
        .unwrap();
    println!(
        "# {} CPUs, load {}, {TASKS} tasks on {TASKS} pools, {secs} s per phase",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').next().unwrap_or("?")
    );

    let limiter = |window: Duration, spread: bool| {
        let (stores, own) = (pools.iter().cloned().map(Store::new).collect::<Vec<_>>(), own.clone());
        move |i: usize| {
            let (s, c) = (stores[i].clone(), if spread { own[i] } else { shared });
            async move {
                // Admitted or told to wait: either is one acquire.
                rate_limits::acquire_now(&s, t, c, Some(600), window).await.unwrap();
            }
        }
    };
    let raw = |spread: bool| {
        let pools = pools.clone();
        move |i: usize| {
            let p = pools[i].clone();
            async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET LOCAL synchronous_commit = off; UPDATE bench_counter SET n = n + 1 WHERE id = {}",
                    if spread { i } else { 0 }
                )))
                .execute(&p)
                .await
                .unwrap();
            }
        }
    };
    let one_row = rate(secs, raw(false)).await;
    let rows = rate(secs, raw(true)).await;
    for (label, window, spread, base, base_label) in [
        ("one connection, admitting (600 per 1 s)", Duration::from_secs(1), false, one_row, "one-row UPDATE"),
        ("one connection, refusing (600 per 60 s)", Duration::from_secs(60), false, one_row, "one-row UPDATE"),
        ("8 connections, admitting (600 per 1 s)", Duration::from_secs(1), true, rows, "8-row UPDATE"),
    ] {
        let r = rate(secs, limiter(window, spread)).await;
        println!("rate limiter, {label}: {r:.0} acquires/s; {base_label} baseline {base:.0}/s; ratio {:.2}", r / base);
    }
}
