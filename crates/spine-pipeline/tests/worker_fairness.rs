//! Fairness across tenants through a running worker (decision 0025): a tenant that appears while
//! another works through a backlog gets its job run long before that backlog is done, also when
//! the worker started with a single tenant (and so claimed that tenant's jobs directly).

use std::time::{Duration, Instant};

use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::RetryPolicy;
use spine_pipeline::Supervisor;
use spine_pipeline::worker::{Handlers, Worker, WorkerConfig};
use spine_store::Store;
use spine_store::queue::{self, NewJob};

async fn tenant(db: &spine_testkit::TestDb, slug: &str) -> TenantId {
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, $2)")
        .bind(t.as_uuid())
        .bind(slug)
        .execute(&db.pool)
        .await
        .unwrap();
    t
}

async fn count(db: &spine_testkit::TestDb, t: TenantId, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM qiserver.jobs WHERE tenant_id = $1 AND state = $2")
        .bind(t.as_uuid())
        .bind(state)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_tenant_does_not_wait_behind_a_backlog() {
    let db = spine_testkit::test_db().await;
    let store = Store::new(db.pool.clone());
    let busy = tenant(&db, "busy").await;
    let jobs: Vec<NewJob> = (0..3_000).map(|i| NewJob::new(busy, "slow", json!({ "i": i }))).collect();
    let mut tx = store.tenant_tx(busy).await.unwrap();
    queue::enqueue_many(tx.conn(), &jobs).await.unwrap();
    tx.commit().await.unwrap();

    // 2 at a time, 5 ms each: the backlog takes about 7.5 s.
    let handlers = Handlers::new()
        .register("slow", RetryPolicy::default(), |_| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(())
        })
        .register("quick", RetryPolicy::default(), |_| async { Ok(()) });
    let mut cfg = WorkerConfig::new("fair-1", 2);
    cfg.claim_batch = 4;
    cfg.shutdown_grace = Duration::from_secs(2);
    let sup = Supervisor::new();
    let worker = Worker::new(db.pool.clone(), store.clone(), handlers, cfg);
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));
    let t0 = Instant::now();
    while count(&db, busy, "succeeded").await < 20 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the worker does not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let late = tenant(&db, "late").await;
    let mut tx = store.tenant_tx(late).await.unwrap();
    queue::enqueue(tx.conn(), &NewJob::new(late, "quick", json!({}))).await.unwrap();
    tx.commit().await.unwrap();
    let t1 = Instant::now();
    while count(&db, late, "succeeded").await < 1 {
        assert!(t1.elapsed() < Duration::from_secs(20), "the late tenant's job never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waited = t1.elapsed();
    let left = count(&db, busy, "queued").await;
    assert!(left > 1_000, "the late tenant waited for the backlog: {left} left after {waited:?}");
    assert!(waited < Duration::from_secs(3), "the late tenant waited {waited:?}");

    sup.shutdown().await;
    handle.await.unwrap().unwrap();
}
