//! The worker runtime on a real PostgreSQL: outcomes by error class, panics, unknown kinds, idle
//! pickup through LISTEN/NOTIFY, graceful shutdown, fan-out, lease expiry and batch handlers.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::{ErrorClass, JobError, RetryPolicy};
use spine_pipeline::Supervisor;
use spine_pipeline::worker::{Handlers, Worker, WorkerConfig, WorkerStats};
use spine_store::queue::{self, AttemptRow, JobRow, NewJob};
use spine_store::{Store, StoreError};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinHandle;
use uuid::Uuid;

struct Env {
    _db: spine_testkit::TestDb,
    pool: PgPool,
    store: Store,
    tenant: TenantId,
}

async fn env() -> Env {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'wt', 'W')")
        .bind(tenant.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let pool = PgPoolOptions::new().max_connections(10).connect_with(db.options.clone()).await.unwrap();
    let store = Store::new(pool.clone());
    Env { _db: db, pool, store, tenant }
}

struct Running {
    sup: Supervisor,
    handle: JoinHandle<Result<(), StoreError>>,
    stats: Arc<WorkerStats>,
}

fn start(env: &Env, handlers: Handlers, cfg: WorkerConfig) -> Running {
    let sup = Supervisor::new();
    let worker = Worker::new(env.pool.clone(), env.store.clone(), handlers, cfg);
    let stats = worker.stats();
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));
    Running { sup, handle, stats }
}

/// Signals shutdown and waits for the worker; returns how long that took.
async fn stop(r: Running) -> Duration {
    let t = Instant::now();
    r.sup.shutdown().await;
    r.handle.await.unwrap().unwrap();
    t.elapsed()
}

fn cfg(id: &str) -> WorkerConfig {
    let mut c = WorkerConfig::new(id, 4);
    c.poll_every = Duration::from_millis(200);
    c.shutdown_grace = Duration::from_secs(5);
    c
}

async fn put(env: &Env, job: NewJob) -> Uuid {
    let mut tx = env.store.tenant_tx(job.tenant).await.unwrap();
    let id = queue::enqueue(tx.conn(), &job).await.unwrap().id();
    tx.commit().await.unwrap();
    id
}

async fn row(env: &Env, id: Uuid) -> JobRow {
    queue::get(&mut env.pool.acquire().await.unwrap(), id).await.unwrap()
}

async fn history(env: &Env, id: Uuid) -> Vec<AttemptRow> {
    queue::attempts(&mut env.pool.acquire().await.unwrap(), id).await.unwrap()
}

/// Polls `cond` every 10 ms until it holds; panics after `max`.
async fn wait_until<F, Fut>(what: &str, max: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let t = Instant::now();
    while !cond().await {
        assert!(t.elapsed() < max, "timed out after {max:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn unsettled(env: &Env) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM qiserver.jobs WHERE state IN ('queued', 'running')")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

fn fail_with(
    class: ErrorClass,
) -> impl Fn(spine_pipeline::worker::JobContext) -> std::future::Ready<Result<(), JobError>> {
    move |_| std::future::ready(Err(JobError::new(class, format!("{class} trouble"))))
}

#[tokio::test]
async fn outcomes_follow_the_error_class() {
    let env = env().await;
    let p = RetryPolicy::default();
    // Retry-After is clamped to [3 s, 60 s] (3 s rather than 1 s so nothing is due again before the end).
    let rate =
        RetryPolicy { retry_after_min: Duration::from_secs(3), retry_after_max: Duration::from_secs(60), ..p.clone() };
    let mut handlers = Handlers::new()
        .register("ok", p.clone(), |_| async { Ok(()) })
        .register("rate", rate, |ctx| async move {
            let ms = ctx.payload["retry_after_ms"].as_u64().unwrap();
            Err(JobError::rate_limited("429", Some(Duration::from_millis(ms))))
        })
        .register("panics", p.clone(), |ctx| async move {
            if ctx.attempt > 0 {
                panic!("boom {}", 42);
            }
            Ok(())
        });
    for class in [ErrorClass::Auth, ErrorClass::Invalid, ErrorClass::Server, ErrorClass::Network, ErrorClass::Timeout] {
        handlers = handlers.register(class.as_str(), p.clone(), fail_with(class));
    }
    let t = env.tenant;
    let mut ids = std::collections::HashMap::new();
    for kind in ["ok", "auth", "invalid", "server", "network", "timeout", "panics", "nobody"] {
        ids.insert(kind.to_owned(), put(&env, NewJob::new(t, kind, json!({}))).await);
    }
    ids.insert("rate30".into(), put(&env, NewJob::new(t, "rate", json!({ "retry_after_ms": 30_000 }))).await);
    ids.insert("rate10ms".into(), put(&env, NewJob::new(t, "rate", json!({ "retry_after_ms": 10 }))).await);
    ids.insert("rate1h".into(), put(&env, NewJob::new(t, "rate", json!({ "retry_after_ms": 3_600_000 }))).await);
    let mut last = NewJob::new(t, "server", json!({}));
    last.max_attempts = 1;
    ids.insert("max".into(), put(&env, last).await);

    let w = start(&env, handlers, cfg("w-classes"));
    wait_until("every job to settle", Duration::from_secs(60), || async { unsettled(&env).await == 0 }).await;
    let stats = w.stats.clone();
    stop(w).await;

    let ok = row(&env, ids["ok"]).await;
    assert_eq!((ok.state.as_str(), ok.attempts, ok.last_error_class.as_deref()), ("succeeded", 1, None));
    for kind in ["auth", "invalid"] {
        let r = row(&env, ids[kind]).await;
        assert_eq!((r.state.as_str(), r.attempts, r.last_error_class.as_deref()), ("quarantined", 1, Some(kind)));
        assert_eq!(r.last_error_message.as_deref(), Some(format!("{kind} trouble").as_str()));
    }
    // Retryable classes wait for the first step of the schedule (5 s) ± 20%.
    for kind in ["server", "network", "timeout"] {
        let r = row(&env, ids[kind]).await;
        assert_eq!((r.state.as_str(), r.attempts, r.last_error_class.as_deref()), ("failed", 1, Some(kind)));
        let a = history(&env, ids[kind]).await;
        assert_eq!((a.len(), a[0].outcome.as_str(), a[0].error_class.as_deref()), (1, "failed", Some(kind)));
        let wait = (r.run_at - a[0].finished_at).as_seconds_f64();
        assert!((3.999..=6.001).contains(&wait), "{kind}: retry in {wait} s");
    }
    // Rate limited: the remote's Retry-After, clamped, without jitter.
    for (key, expect) in [("rate30", 30.0), ("rate10ms", 3.0), ("rate1h", 60.0)] {
        let r = row(&env, ids[key]).await;
        assert_eq!((r.state.as_str(), r.last_error_class.as_deref()), ("failed", Some("rate_limited")));
        let wait = (r.run_at - history(&env, ids[key]).await[0].finished_at).as_seconds_f64();
        assert!((wait - expect).abs() < 0.002, "{key}: retry in {wait} s");
    }
    let r = row(&env, ids["max"]).await;
    assert_eq!((r.state.as_str(), r.attempts, r.last_error_class.as_deref()), ("quarantined", 1, Some("server")));

    let r = row(&env, ids["panics"]).await;
    assert_eq!((r.state.as_str(), r.last_error_class.as_deref()), ("failed", Some("internal")), "panics are retried");
    assert!(r.last_error_message.as_deref().unwrap().contains("boom 42"), "{:?}", r.last_error_message);
    let a = history(&env, ids["panics"]).await;
    assert_eq!((a.len(), a[0].outcome.as_str(), a[0].error_class.as_deref()), (1, "failed", Some("internal")));
    assert!(a[0].error_message.as_deref().unwrap().contains("boom 42"));

    let r = row(&env, ids["nobody"]).await;
    assert_eq!((r.state.as_str(), r.last_error_class.as_deref()), ("quarantined", Some("invalid")));
    assert_eq!(r.last_error_message.as_deref(), Some("no handler for kind nobody"));

    let s = stats.snapshot();
    assert_eq!((s.claimed, s.succeeded, s.failed, s.quarantined, s.panics), (12, 1, 7, 4, 1), "{s:?}");
    assert_eq!(stats.failures_of(ErrorClass::Internal), 1);
    assert_eq!(stats.run_duration.snapshot().count, 11, "every handler run is timed (not the unknown kind)");
    assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_idle_worker_is_woken_by_notify_not_the_poll_timer() {
    let env = env().await;
    let mut c = cfg("w-idle");
    c.poll_every = Duration::from_secs(10);
    let w = start(&env, Handlers::new().register("ok", RetryPolicy::default(), |_| async { Ok(()) }), c);
    let stats = w.stats.clone();
    wait_until("the first (empty) claim", Duration::from_secs(10), || async {
        stats.empty_claims.load(Ordering::Relaxed) >= 1
    })
    .await;
    let t = Instant::now();
    let id = put(&env, NewJob::new(env.tenant, "ok", json!({}))).await;
    wait_until("the job to succeed", Duration::from_secs(2), || async { stats.succeeded.load(Ordering::Relaxed) == 1 })
        .await;
    let took = t.elapsed();
    assert_eq!(row(&env, id).await.state, "succeeded");
    let s = stats.snapshot();
    assert_eq!(s.claims, 2, "one empty claim, then one after the notification: {s:?}");
    assert!(s.notifications >= 1, "{s:?}");
    stop(w).await;
    eprintln!("idle pickup took {took:?}");
}

#[tokio::test]
async fn shutdown_releases_what_outlives_the_grace() {
    let env = env().await;
    let handlers = Handlers::new().register("slow", RetryPolicy::default(), |_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    });
    let id = put(&env, NewJob::new(env.tenant, "slow", json!({}))).await;
    let mut c = cfg("w-grace");
    c.shutdown_grace = Duration::from_millis(500);
    let w = start(&env, handlers, c);
    let stats = w.stats.clone();
    wait_until("the handler to start", Duration::from_secs(10), || async {
        stats.in_flight.load(Ordering::Relaxed) == 1
    })
    .await;
    let took = stop(w).await;
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(2500), "shutdown took {took:?}");
    let r = row(&env, id).await;
    // No lease left; lease_owner keeps naming the worker that ran it last (decision 0028).
    assert_eq!((r.state.as_str(), r.attempts, r.lease_expires_at), ("queued", 0, None));
    assert!(r.lease_owner.is_some());
    let a = history(&env, id).await;
    assert_eq!((a.len(), a[0].outcome.as_str(), a[0].attempt), (1, "released", 1));
    assert_eq!(stats.released.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn shutdown_lets_a_handler_finish_within_the_grace() {
    let env = env().await;
    let handlers = Handlers::new().register("short", RetryPolicy::default(), |_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    });
    let id = put(&env, NewJob::new(env.tenant, "short", json!({}))).await;
    let w = start(&env, handlers, cfg("w-finish"));
    let stats = w.stats.clone();
    wait_until("the handler to start", Duration::from_secs(10), || async {
        stats.in_flight.load(Ordering::Relaxed) == 1
    })
    .await;
    let took = stop(w).await;
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(row(&env, id).await.state, "succeeded");
    assert_eq!(stats.succeeded.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_parent_fans_out_and_counts_its_children() {
    let env = env().await;
    let p = RetryPolicy::default();
    let handlers = Handlers::new()
        .register("fan", p.clone(), |ctx| async move {
            let mut tx = ctx
                .store
                .tenant_tx(ctx.tenant)
                .await
                .map_err(|e| JobError::new(ErrorClass::Internal, e.to_string()))?;
            let kids: Vec<NewJob> = (0..3).map(|i| ctx.child("kid", json!({ "i": i }))).collect();
            queue::enqueue_many(tx.conn(), &kids)
                .await
                .map_err(|e| JobError::new(ErrorClass::Internal, e.to_string()))?;
            tx.commit().await.map_err(|e| JobError::new(ErrorClass::Internal, e.to_string()))
        })
        .register("kid", p, |ctx| async move {
            match ctx.payload["i"].as_i64() {
                Some(1) => Err(JobError::new(ErrorClass::Invalid, "bad row")),
                _ => Ok(()),
            }
        });
    let parent = put(&env, NewJob::new(env.tenant, "fan", json!({}))).await;
    let w = start(&env, handlers, cfg("w-fan"));
    wait_until("the children to end", Duration::from_secs(30), || async {
        let r = row(&env, parent).await;
        r.children_succeeded + r.children_failed == 3
    })
    .await;
    stop(w).await;
    let r = row(&env, parent).await;
    assert_eq!(r.state, "succeeded");
    assert_eq!((r.children_total, r.children_succeeded, r.children_failed), (3, 2, 1));
}

#[tokio::test]
async fn a_hung_worker_loses_its_lease_and_another_reruns_the_job() {
    let env = env().await;
    let handlers = || {
        Handlers::new().register("hang", RetryPolicy::default(), |ctx| async move {
            if ctx.attempt == 1 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok(())
        })
    };
    let id = put(&env, NewJob::new(env.tenant, "hang", json!({}))).await;
    // Worker a: a short lease, no heartbeats, never reaps, room for exactly one job.
    let mut a = WorkerConfig::new("w-a", 1).with_lease(Duration::from_secs(1));
    a.heartbeat_every = None;
    a.reap_every = Duration::from_secs(3600);
    a.claim_batch = 1;
    a.shutdown_grace = Duration::from_millis(200);
    let wa = start(&env, handlers(), a);
    let sa = wa.stats.clone();
    wait_until("a to claim the job", Duration::from_secs(10), || async { sa.claimed.load(Ordering::Relaxed) == 1 })
        .await;
    let mut b = cfg("w-b");
    b.reap_every = Duration::from_millis(200);
    let wb = start(&env, handlers(), b);
    let sb = wb.stats.clone();
    wait_until("b to rerun the job", Duration::from_secs(20), || async { sb.succeeded.load(Ordering::Relaxed) == 1 })
        .await;
    assert!(sb.reaped.load(Ordering::Relaxed) >= 1);
    stop(wb).await;
    stop(wa).await;
    let r = row(&env, id).await;
    assert_eq!((r.state.as_str(), r.attempts), ("succeeded", 2));
    let a = history(&env, id).await;
    let got: Vec<(i32, &str, &str)> = a.iter().map(|x| (x.attempt, x.outcome.as_str(), x.worker_id.as_str())).collect();
    assert_eq!(got, vec![(1, "lease_expired", "w-a"), (2, "succeeded", "w-b")]);
    // a's late result (released when its grace ran out) was not applied.
    assert_eq!(sa.stale.load(Ordering::Relaxed), 1);
    assert_eq!(sa.released.load(Ordering::Relaxed), 0);
}

/// A batch handler is handed the held jobs of its kind and tenant in one call, and each job ends
/// with its own result.
#[tokio::test]
async fn a_batch_handler_takes_the_held_jobs_of_its_kind_together() {
    let env = env().await;
    let calls = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let seen = calls.clone();
    let handlers = Handlers::new().register_batch("batch", RetryPolicy::default(), 8, move |ctxs| {
        seen.lock().unwrap().push(ctxs.len());
        let results = ctxs
            .iter()
            .map(|c| match c.payload["n"].as_i64() {
                Some(2) => Err(JobError::new(ErrorClass::Invalid, "two")),
                _ => Ok(()),
            })
            .collect();
        std::future::ready(results)
    });
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(put(&env, NewJob::new(env.tenant, "batch", json!({"n": n}))).await);
    }
    // One handler slot, one claim of all five: the first to start takes the other four along.
    let mut c = cfg("w-batch");
    c.concurrency = 1;
    c.claim_batch = 10;
    let w = start(&env, handlers, c);
    wait_until("every job settled", Duration::from_secs(20), || async { unsettled(&env).await == 0 }).await;
    let stats = w.stats.clone();
    stop(w).await;
    let stats = stats.snapshot();
    assert_eq!(*calls.lock().unwrap(), vec![5]);
    for (n, id) in ids.into_iter().enumerate() {
        let r = row(&env, id).await;
        let want = if n == 2 { "quarantined" } else { "succeeded" };
        assert_eq!(r.state.as_str(), want, "job {n}");
    }
    assert_eq!((stats.succeeded, stats.quarantined), (4, 1), "{stats:?}");
}
