//! Leases are held per worker (decision 0028): a live worker renews its own lease, also while it
//! holds nothing; a clean stop removes it; the reaper takes back a job only when the job's lease
//! and its worker's have both lapsed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use spine_core::ids::TenantId;
use spine_pipeline::Supervisor;
use spine_pipeline::worker::{Handlers, Worker, WorkerConfig};
use spine_store::Store;
use spine_store::queue::{self, NewJob};
use sqlx::PgPool;
use uuid::Uuid;

async fn setup() -> (spine_testkit::TestDb, Store, TenantId) {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    spine_testkit::add_tenant(&db.pool, tenant.as_uuid(), "wl").await;
    let store = Store::new(db.pool.clone());
    (db, store, tenant)
}

/// The worker's lease, when it has a row.
async fn worker_lease(pool: &PgPool, worker: &str) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT lease_expires_at FROM qiserver.job_workers WHERE worker_id = $1")
        .bind(worker)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn lapse(pool: &PgPool, sql: &'static str, key: &str) {
    sqlx::query(sql).bind(key).execute(pool).await.unwrap();
}

const LAPSE_JOBS: &str = "UPDATE qiserver.jobs SET lease_expires_at = now() - interval '1 second' WHERE lease_owner = $1 AND state = 'running'";
const LAPSE_WORKER: &str =
    "UPDATE qiserver.job_workers SET lease_expires_at = now() - interval '1 second' WHERE worker_id = $1";

#[tokio::test]
async fn an_idle_worker_renews_its_lease_and_a_clean_stop_removes_it() {
    let (db, store, _) = setup().await;
    let lease = Duration::from_millis(600);
    let mut cfg = WorkerConfig::new("idle-worker", 2).with_lease(lease);
    cfg.poll_every = Duration::from_millis(100);
    let worker = Worker::new(db.pool.clone(), store, Handlers::new(), cfg);
    let stats = worker.stats();
    let sup = Supervisor::new();
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));

    // Heartbeats every lease / 3 = 200 ms, with nothing held. Wait for twice the lease's worth.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stats.heartbeats.load(Ordering::Relaxed) < 6 {
        assert!(tokio::time::Instant::now() < deadline, "no heartbeats from an idle worker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let until = worker_lease(&db.pool, "idle-worker").await.expect("an idle worker has a lease");
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&db.pool).await.unwrap();
    assert!(until > now, "an idle worker's lease is kept alive ({until} <= {now})");
    assert_eq!(queue::reap_expired(&db.pool).await.unwrap(), 0);
    assert!(worker_lease(&db.pool, "idle-worker").await.is_some(), "a live worker is not forgotten");

    sup.shutdown().await;
    handle.await.unwrap().unwrap();
    assert_eq!(worker_lease(&db.pool, "idle-worker").await, None, "a clean stop removes the worker's lease");
}

#[tokio::test]
async fn a_job_is_taken_back_only_when_its_lease_and_its_workers_have_lapsed() {
    let (db, store, tenant) = setup().await;
    let pool = &db.pool;
    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let id: Uuid = queue::enqueue(tx.conn(), &NewJob::new(tenant, "demo", json!({}))).await.unwrap().id();
    tx.commit().await.unwrap();

    let claimed = queue::claim(pool, "w-1", None, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let (job_lease,): (DateTime<Utc>,) = sqlx::query_as("SELECT lease_expires_at FROM qiserver.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    let worker = worker_lease(pool, "w-1").await.expect("a claim registers its worker");
    assert!(worker >= job_lease, "a job's lease never outlasts its worker's");

    // The job's lease lapsed, its worker's has not: the worker is alive, the job stays.
    lapse(pool, LAPSE_JOBS, "w-1").await;
    assert_eq!(queue::reap_expired(pool).await.unwrap(), 0);
    // The worker's lapsed too, but it heartbeats the job first: renewed, nothing taken back.
    lapse(pool, LAPSE_WORKER, "w-1").await;
    assert_eq!(queue::heartbeat(pool, "w-1", &[id], Duration::from_secs(60)).await.unwrap(), vec![id]);
    assert_eq!(queue::reap_expired(pool).await.unwrap(), 0);
    // Both lapse: the job is taken back and the gone worker forgotten.
    lapse(pool, LAPSE_JOBS, "w-1").await;
    lapse(pool, LAPSE_WORKER, "w-1").await;
    assert_eq!(queue::reap_expired(pool).await.unwrap(), 1);
    assert_eq!(worker_lease(pool, "w-1").await, None);
    let (state, owner): (String, Option<String>) =
        sqlx::query_as("SELECT state, lease_owner FROM qiserver.jobs WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), owner.as_deref()), ("failed", Some("w-1")), "lease_owner names the last worker");
    // Its late heartbeat holds nothing (and registers it again, harmlessly).
    assert!(queue::heartbeat(pool, "w-1", &[id], Duration::from_secs(60)).await.unwrap().is_empty());
    let history = queue::attempts(&mut pool.acquire().await.unwrap(), id).await.unwrap();
    assert_eq!(history.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), ["lease_expired"]);
}
