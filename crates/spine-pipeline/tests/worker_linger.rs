//! Lingering kinds (decision 0034) on a real PostgreSQL: the first job after a quiet spell is
//! claimed at once, jobs of the kind that keep coming are claimed a window after the last claim
//! that found some (one batch instead of one call each), and a job of another kind cuts the wait.

use std::time::{Duration, Instant};

use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::RetryPolicy;
use spine_pipeline::Supervisor;
use spine_pipeline::worker::{Handlers, Worker, WorkerConfig};
use spine_store::Store;
use spine_store::queue::{self, NewJob};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::mpsc;

/// Long enough that "at once" and "a window later" cannot be confused on a busy machine.
const WINDOW: Duration = Duration::from_millis(1500);

/// A handler call: when it started, the kind and how many jobs it was given.
type Call = (Instant, &'static str, usize);

async fn put(store: &Store, tenant: TenantId, kind: &str) -> Instant {
    let mut tx = store.tenant_tx(tenant).await.unwrap();
    queue::enqueue(tx.conn(), &NewJob::new(tenant, kind, json!({}))).await.unwrap();
    tx.commit().await.unwrap();
    Instant::now()
}

async fn next(calls: &mut mpsc::UnboundedReceiver<Call>) -> Call {
    tokio::time::timeout(Duration::from_secs(20), calls.recv()).await.expect("a handler call").unwrap()
}

#[tokio::test]
async fn jobs_of_a_lingering_kind_are_claimed_together_while_they_keep_coming() {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    spine_testkit::add_tenant(&db.pool, tenant.as_uuid(), "wl").await;
    let pool = PgPoolOptions::new().max_connections(10).connect_with(db.options.clone()).await.unwrap();
    let store = Store::new(pool.clone());

    let (tx, mut calls) = mpsc::unbounded_channel::<Call>();
    let (batch_tx, quick_tx) = (tx.clone(), tx);
    let handlers = Handlers::new()
        .register_batch("slow.batch", RetryPolicy::default(), 32, move |ctxs| {
            batch_tx.send((Instant::now(), "slow.batch", ctxs.len())).unwrap();
            std::future::ready(ctxs.iter().map(|_| Ok(())).collect())
        })
        .linger("slow.batch", WINDOW)
        .register("quick", RetryPolicy::default(), move |_| {
            quick_tx.send((Instant::now(), "quick", 1)).unwrap();
            std::future::ready(Ok(()))
        });
    let mut cfg = WorkerConfig::new("w-linger", 4);
    cfg.poll_every = Duration::from_secs(60); // only notifications wake it
    cfg.shutdown_grace = Duration::from_secs(5);
    let worker = Worker::new(pool.clone(), store.clone(), handlers, cfg);
    let stats = worker.stats();
    let sup = Supervisor::new();
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));
    // The worker's first claims (at start) find nothing.
    while stats.snapshot().empty_claims == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // After a quiet spell: at once.
    let enqueued = put(&store, tenant, "slow.batch").await;
    let (first, kind, n) = next(&mut calls).await;
    assert_eq!((kind, n), ("slow.batch", 1));
    let pickup = first.saturating_duration_since(enqueued);
    assert!(pickup < WINDOW / 2, "the first job waited {pickup:?}");

    // Two more while the first was just claimed: one claim a window later, one call for both.
    put(&store, tenant, "slow.batch").await;
    put(&store, tenant, "slow.batch").await;
    let (second, kind, n) = next(&mut calls).await;
    assert_eq!((kind, n), ("slow.batch", 2), "both in one call");
    let gap = second.duration_since(first);
    assert!(gap >= WINDOW * 2 / 3, "claimed {gap:?} after the first, not a window later");

    // Another one lingers again; a job of another kind is claimed at once and takes it along.
    put(&store, tenant, "slow.batch").await;
    let enqueued = put(&store, tenant, "quick").await;
    let mut got = vec![next(&mut calls).await, next(&mut calls).await];
    got.sort_by_key(|c| c.1);
    let kinds: Vec<(&str, usize)> = got.iter().map(|c| (c.1, c.2)).collect();
    assert_eq!(kinds, vec![("quick", 1), ("slow.batch", 1)]);
    for (at, kind, _) in got {
        let waited = at.saturating_duration_since(enqueued);
        assert!(waited < WINDOW / 2, "{kind} waited {waited:?} after the quick job's enqueue");
    }

    let t = Instant::now();
    while stats.snapshot().succeeded < 5 {
        assert!(t.elapsed() < Duration::from_secs(20), "results not written: {:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = stats.snapshot();
    assert_eq!(s.succeeded, 5, "{s:?}");
    assert!(s.lingered >= 2, "{s:?}");
    sup.shutdown().await;
    handle.await.unwrap().unwrap();
}
