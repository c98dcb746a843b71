//! The worker and the connection a job names (decision 0022): a job whose connection is disabled
//! is not run but quarantined with the reason; a handler's auth failure disables the connection
//! for the jobs after it; a deferred job goes back to the queue without using up an attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::{ErrorClass, JobError, RetryPolicy};
use spine_pipeline::Supervisor;
use spine_pipeline::worker::{Handlers, Worker, WorkerConfig};
use spine_store::Store;
use spine_store::queue::{self, NewJob};
use uuid::Uuid;

struct Env {
    db: spine_testkit::TestDb,
    store: Store,
    tenant: TenantId,
    conn: Uuid,
}

async fn env() -> Env {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'wc', 'W')")
        .bind(tenant.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let conn = sqlx::query_scalar(
        "INSERT INTO qiconnect.connections (tenant_id, connector_type, name, config)
         VALUES ($1, 'http_json', 'crm', '{\"base_url\": \"http://127.0.0.1:9/\"}') RETURNING id",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let store = Store::new(db.pool.clone());
    Env { db, store, tenant, conn }
}

async fn put(env: &Env, kind: &str) -> Uuid {
    let mut job = NewJob::new(env.tenant, kind, json!({}));
    job.connection_id = Some(env.conn);
    let mut tx = env.store.tenant_tx(env.tenant).await.unwrap();
    let id = queue::enqueue(tx.conn(), &job).await.unwrap().id();
    tx.commit().await.unwrap();
    id
}

/// (state, attempts, last error message) once the job has reached one of `states`.
async fn settled(env: &Env, id: Uuid, states: &[&str]) -> (String, i32, Option<String>) {
    let t = Instant::now();
    loop {
        let row: (String, i32, Option<String>) =
            sqlx::query_as("SELECT state, attempts, last_error_message FROM qiserver.jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&env.db.pool)
                .await
                .unwrap();
        if states.contains(&row.0.as_str()) {
            return row;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "job {id} still {} after 20 s", row.0);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_disabled_connection_stops_its_jobs_and_auth_failures_disable_it() {
    let env = env().await;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handlers = Handlers::new()
        .register("crm.pull", RetryPolicy::default(), move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .register("crm.login", RetryPolicy::default(), |_| async {
            Err(JobError::new(ErrorClass::Auth, "401 from https://crm.example: token revoked"))
        });
    let mut cfg = WorkerConfig::new("wc-1", 1);
    cfg.poll_every = Duration::from_millis(100);
    cfg.shutdown_grace = Duration::from_secs(2);
    let sup = Supervisor::new();
    let worker = Worker::new(env.db.pool.clone(), env.store.clone(), handlers, cfg);
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));

    let first = put(&env, "crm.pull").await;
    assert_eq!(settled(&env, first, &["succeeded"]).await.0, "succeeded");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let login = put(&env, "crm.login").await;
    let (state, attempts, _) = settled(&env, login, &["quarantined"]).await;
    assert_eq!((state.as_str(), attempts), ("quarantined", 1), "auth is not retried");
    let (status, reason): (String, String) =
        sqlx::query_as("SELECT status, status_reason FROM qiconnect.connections WHERE id = $1")
            .bind(env.conn)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "disabled");
    assert!(reason.contains("token revoked"), "{reason}");

    // The next job on that connection is not run: quarantined with the connection's reason.
    let second = put(&env, "crm.pull").await;
    let (state, _, message) = settled(&env, second, &["quarantined"]).await;
    assert_eq!(state, "quarantined");
    let message = message.unwrap();
    assert!(message.contains("connection crm") && message.contains("is disabled"), "{message}");
    assert!(message.contains("token revoked") && message.contains("requeue"), "{message}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler was not called");

    sup.shutdown().await;
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_call_over_the_rate_limit_defers_the_job_without_using_an_attempt() {
    let env = env().await;
    let limiter = spine_pipeline::ratelimit::RateLimiter::with_window(env.store.clone(), Duration::from_secs(2));
    let handlers = Handlers::new().register("crm.pull", RetryPolicy::default(), move |ctx| {
        let limiter = limiter.clone();
        async move { limiter.check(ctx.tenant, ctx.connection_id.unwrap(), Some(1)).await }
    });
    let mut cfg = WorkerConfig::new("wc-2", 2);
    cfg.poll_every = Duration::from_millis(100);
    cfg.shutdown_grace = Duration::from_secs(2);
    let sup = Supervisor::new();
    let worker = Worker::new(env.db.pool.clone(), env.store.clone(), handlers, cfg);
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));

    let (a, b) = (put(&env, "crm.pull").await, put(&env, "crm.pull").await);
    // One call per 2 s window: one job runs now, the other is deferred, then runs in the next window.
    assert_eq!(settled(&env, a, &["succeeded"]).await.1, 1);
    assert_eq!(settled(&env, b, &["succeeded"]).await.1, 1, "the deferral used no attempt");
    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT outcome FROM qiserver.job_attempt_history WHERE job_id = ANY($1) ORDER BY started_at",
    )
    .bind(vec![a, b])
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(outcomes.iter().filter(|o| *o == "deferred").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "succeeded").count(), 2, "{outcomes:?}");
    let status: String = sqlx::query_scalar("SELECT status FROM qiconnect.connections WHERE id = $1")
        .bind(env.conn)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "active", "a deferral is not a failure of the connection");

    sup.shutdown().await;
    handle.await.unwrap().unwrap();
}
