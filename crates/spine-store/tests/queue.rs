//! The queue's SQL semantics on a real PostgreSQL: transactional enqueue, dedupe, claim, finish
//! guarded by lease and attempt, retry timing, lease expiry, quarantine and requeue, fan-out, prune.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_store::Store;
use spine_store::queue::{self, Enqueued, Finish, Finished, JobFilter, NewJob};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

async fn setup() -> (spine_testkit::TestDb, Store, TenantId) {
    let db = spine_testkit::test_db().await;
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'qt', 'Q')")
        .bind(t.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let store = Store::new(db.pool.clone());
    (db, store, t)
}

async fn put(store: &Store, job: NewJob) -> Enqueued {
    let mut tx = store.tenant_tx(job.tenant).await.unwrap();
    let r = queue::enqueue(tx.conn(), &job).await.unwrap();
    tx.commit().await.unwrap();
    r
}

async fn state(db: &spine_testkit::TestDb, id: Uuid) -> (String, i32) {
    sqlx::query_as("SELECT state, attempts FROM qiserver.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn done(j: &queue::ClaimedJob, outcome: Finish) -> Finished {
    Finished { id: j.id, attempt: j.attempts, started_at: j.started_at, finished_at: Utc::now(), outcome }
}

#[tokio::test]
async fn enqueue_exists_only_if_the_transaction_commits() {
    let (db, store, t) = setup().await;
    let mut tx = store.tenant_tx(t).await.unwrap();
    queue::enqueue(tx.conn(), &NewJob::new(t, "demo", json!({"type": "demo.v1"}))).await.unwrap();
    drop(tx); // rolled back
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qiserver.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 0);
    put(&store, NewJob::new(t, "demo", json!({}))).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qiserver.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 1);
    // Another tenant's id in a tenant transaction is refused by RLS.
    let mut tx = store.tenant_tx(t).await.unwrap();
    let other = NewJob::new(TenantId::new(), "demo", json!({}));
    assert!(queue::enqueue(tx.conn(), &other).await.is_err());
}

#[tokio::test]
async fn dedupe_key_holds_while_unfinished() {
    let (db, store, t) = setup().await;
    let mut j = NewJob::new(t, "sync", json!({}));
    j.dedupe_key = Some("conn-1".into());
    let Enqueued::New(first) = put(&store, j.clone()).await else { panic!("first is new") };
    assert_eq!(put(&store, j.clone()).await, Enqueued::Duplicate(first));
    let mut tx = store.tenant_tx(t).await.unwrap();
    let both = queue::enqueue_many(tx.conn(), &[j.clone(), j.clone()]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(both, vec![Enqueued::Duplicate(first), Enqueued::Duplicate(first)]);
    let claimed = queue::claim(&db.pool, "w1", None, 10, LEASE).await.unwrap();
    queue::finish(&db.pool, "w1", &[done(&claimed[0], Finish::Succeeded)]).await.unwrap();
    assert!(matches!(put(&store, j).await, Enqueued::New(id) if id != first));
}

#[tokio::test]
async fn claim_finish_and_stale_results() {
    let (db, store, t) = setup().await;
    let mut ids = Vec::new();
    for p in [0i16, 5, 1] {
        let mut j = NewJob::new(t, "demo", json!({ "p": p }));
        j.priority = p;
        ids.push(put(&store, j).await.id());
    }
    let c = queue::claim(&db.pool, "w1", None, 2, LEASE).await.unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].payload["p"], 5, "highest priority first");
    assert!(c.iter().all(|j| j.attempts == 1));
    let rest = queue::claim(&db.pool, "w2", None, 10, LEASE).await.unwrap();
    assert_eq!(rest.len(), 1, "a claimed job is not claimed twice");
    assert!(queue::claim(&db.pool, "w3", Some(&["other".to_owned()]), 10, LEASE).await.unwrap().is_empty());

    // w2 cannot finish w1's job; a wrong attempt number is ignored too.
    let mut stale = done(&c[0], Finish::Succeeded);
    assert!(queue::finish(&db.pool, "w2", std::slice::from_ref(&stale)).await.unwrap().is_empty());
    stale.attempt = 7;
    assert!(queue::finish(&db.pool, "w1", &[stale]).await.unwrap().is_empty());
    let applied =
        queue::finish(&db.pool, "w1", &[done(&c[0], Finish::Succeeded), done(&c[1], Finish::Succeeded)]).await.unwrap();
    assert_eq!(applied.len(), 2);
    assert_eq!(state(&db, c[0].id).await, ("succeeded".into(), 1));
    let mut conn = db.pool.acquire().await.unwrap();
    let a = queue::attempts(&mut conn, c[0].id).await.unwrap();
    assert_eq!((a.len(), a[0].outcome.as_str(), a[0].worker_id.as_str()), (1, "succeeded", "w1"));
}

#[tokio::test]
async fn failures_wait_then_retry_and_quarantine_then_requeue() {
    let (db, store, t) = setup().await;
    let mut j = NewJob::new(t, "demo", json!({}));
    j.max_attempts = 2;
    let id = put(&store, j).await.id();
    let c = queue::claim(&db.pool, "w", None, 1, LEASE).await.unwrap();
    let later = Utc::now() + chrono::Duration::hours(1);
    let fail = Finish::Failed { class: ErrorClass::Server, message: "503 from remote".into(), retry_at: later };
    queue::finish(&db.pool, "w", &[done(&c[0], fail)]).await.unwrap();
    assert_eq!(state(&db, id).await, ("failed".into(), 1));
    assert!(queue::claim(&db.pool, "w", None, 1, LEASE).await.unwrap().is_empty(), "not due before run_at");
    let mut conn = db.pool.acquire().await.unwrap();
    let f = JobFilter { ids: Some(vec![id]), limit: 10, ..Default::default() };
    assert_eq!(queue::retry(&mut conn, &f).await.unwrap(), vec![id]);
    let c = queue::claim(&db.pool, "w", None, 1, LEASE).await.unwrap();
    assert_eq!(c[0].attempts, 2);
    let q = Finish::Quarantined { class: ErrorClass::Server, message: "again \0 with a NUL".into() };
    queue::finish(&db.pool, "w", &[done(&c[0], q)]).await.unwrap();
    let row = queue::get(&mut conn, id).await.unwrap();
    assert_eq!((row.state.as_str(), row.last_error_class.as_deref()), ("quarantined", Some("server")));
    assert!(row.finished_at.is_some());
    assert_eq!(queue::requeue(&mut conn, &f).await.unwrap(), vec![id]);
    assert_eq!(state(&db, id).await, ("queued".into(), 0));
    assert_eq!(queue::attempts(&mut conn, id).await.unwrap().len(), 2, "history is kept");
}

#[tokio::test]
async fn lapsed_leases_are_reaped_and_claimed_again() {
    let (db, store, t) = setup().await;
    let id = put(&store, NewJob::new(t, "demo", json!({}))).await.id();
    let c = queue::claim(&db.pool, "dead-worker", None, 1, Duration::ZERO).await.unwrap();
    assert_eq!(queue::heartbeat(&db.pool, "someone-else", &[id], LEASE).await.unwrap(), Vec::<Uuid>::new());
    assert_eq!(queue::reap_expired(&db.pool).await.unwrap(), 1);
    assert_eq!(state(&db, id).await, ("failed".into(), 1));
    // The dead worker's late result is ignored; the job runs again.
    assert!(queue::finish(&db.pool, "dead-worker", &[done(&c[0], Finish::Succeeded)]).await.unwrap().is_empty());
    let again = queue::claim(&db.pool, "w2", None, 1, LEASE).await.unwrap();
    assert_eq!((again[0].id, again[0].attempts), (id, 2));
    assert_eq!(queue::heartbeat(&db.pool, "w2", &[id], LEASE).await.unwrap(), vec![id]);
    let mut conn = db.pool.acquire().await.unwrap();
    let a = queue::attempts(&mut conn, id).await.unwrap();
    assert_eq!((a[0].outcome.as_str(), a[0].error_class.as_deref()), ("lease_expired", Some("lease_expired")));
}

#[tokio::test]
async fn released_jobs_do_not_spend_an_attempt() {
    let (db, store, t) = setup().await;
    let id = put(&store, NewJob::new(t, "demo", json!({}))).await.id();
    let c = queue::claim(&db.pool, "w", None, 1, LEASE).await.unwrap();
    queue::finish(&db.pool, "w", &[done(&c[0], Finish::Released)]).await.unwrap();
    assert_eq!(state(&db, id).await, ("queued".into(), 0));
}

#[tokio::test]
async fn parents_count_their_children_and_cancel_and_prune_work() {
    let (db, store, t) = setup().await;
    let parent = put(&store, NewJob::new(t, "fan", json!({}))).await.id();
    let mut kids = Vec::new();
    for i in 0..3 {
        let mut j = NewJob::new(t, "kid", json!({ "i": i }));
        j.parent_job_id = Some(parent);
        kids.push(put(&store, j).await.id());
    }
    let c = queue::claim(&db.pool, "w", Some(&["kid".to_owned()]), 2, LEASE).await.unwrap();
    let q = Finish::Quarantined { class: ErrorClass::Invalid, message: "bad row".into() };
    queue::finish(&db.pool, "w", &[done(&c[0], Finish::Succeeded), done(&c[1], q)]).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let remaining: Vec<Uuid> = kids.iter().copied().filter(|k| !c.iter().any(|j| j.id == *k)).collect();
    let f = JobFilter { ids: Some(remaining.clone()), limit: 10, ..Default::default() };
    assert_eq!(queue::cancel(&mut conn, &f).await.unwrap(), remaining);
    let p = queue::get(&mut conn, parent).await.unwrap();
    assert_eq!((p.children_total, p.children_succeeded, p.children_failed), (3, 1, 2));

    let pruned = queue::prune(&db.pool, Utc::now() + chrono::Duration::seconds(1), 100).await.unwrap();
    assert_eq!(pruned, 2, "the succeeded and the cancelled child go; quarantined stays");
    let stats = queue::stats(&mut conn, Some(t.as_uuid())).await.unwrap();
    let queued: i64 = stats.iter().filter(|s| s.state == "queued").map(|s| s.jobs).sum();
    assert_eq!(queued, 1, "{stats:?}");
}

#[tokio::test]
async fn kinds_are_checked_before_anything_is_written() {
    let (db, store, t) = setup().await;
    // Kinds are checked before anything is written.
    let mut tx = store.tenant_tx(t).await.unwrap();
    let err = queue::enqueue(tx.conn(), &NewJob::new(t, "Bad-Kind", json!({}))).await.unwrap_err();
    assert!(err.to_string().contains("Bad-Kind"), "{err}");
    drop(tx);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qiserver.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn references_are_checked_per_statement() {
    let (db, store, t) = setup().await;
    let other = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'qo', 'O')")
        .bind(other.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let parent = put(&store, NewJob::new(t, "demo", json!({}))).await.id();

    // A child in the parent's tenant is fine; a missing parent, or one of another tenant, is not.
    let mut child = NewJob::new(t, "demo", json!({}));
    child.parent_job_id = Some(parent);
    put(&store, child.clone()).await;
    for (tenant, parent_id) in [(t, Uuid::now_v7()), (other, parent)] {
        let mut bad = child.clone();
        bad.tenant = tenant;
        bad.parent_job_id = Some(parent_id);
        let mut tx = store.tenant_tx(tenant).await.unwrap();
        let err = queue::enqueue(tx.conn(), &bad).await.unwrap_err();
        assert!(err.to_string().contains("parent job"), "{err}");
    }
    let mut bad = NewJob::new(t, "demo", json!({}));
    bad.file_id = Some(Uuid::now_v7());
    let mut tx = store.tenant_tx(t).await.unwrap();
    let err = queue::enqueue(tx.conn(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("file"), "{err}");
    drop(tx);

    // References cannot change afterwards, and a referenced parent cannot be deleted.
    let err = sqlx::query("UPDATE qiserver.jobs SET parent_job_id = NULL WHERE parent_job_id = $1")
        .bind(parent)
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot change"), "{err}");
    let err = sqlx::query("DELETE FROM qiserver.jobs WHERE id = $1").bind(parent).execute(&db.pool).await.unwrap_err();
    assert!(err.to_string().contains("jobs still reference it"), "{err}");
    let err =
        sqlx::query("DELETE FROM core.tenants WHERE id = $1").bind(t.as_uuid()).execute(&db.pool).await.unwrap_err();
    assert!(err.to_string().contains("reference"), "{err}");
    // Other work on the job (the queue's own updates) is untouched by the guard.
    sqlx::query("UPDATE qiserver.jobs SET priority = 3 WHERE id = $1").bind(parent).execute(&db.pool).await.unwrap();
}

/// A batch of successes and failures: the successes go through their own statement and the rest
/// through the general one, in one transaction. A success after a failed attempt clears the
/// error, keeps the worker's start and end, and the history lists both attempts.
#[tokio::test]
async fn a_mixed_batch_records_successes_and_failures() {
    let (db, store, t) = setup().await;
    let a = put(&store, NewJob::new(t, "demo", json!({"n": 1}))).await.id();
    let b = put(&store, NewJob::new(t, "demo", json!({"n": 2}))).await.id();
    let c = queue::claim(&db.pool, "w", None, 1, LEASE).await.unwrap();
    assert_eq!(c[0].id, a);
    let now = Utc::now();
    let fail = Finish::Failed { class: ErrorClass::Network, message: "reset".into(), retry_at: now };
    queue::finish(&db.pool, "w", &[done(&c[0], fail)]).await.unwrap();

    let c = queue::claim(&db.pool, "w", None, 2, LEASE).await.unwrap();
    let (ca, cb) = if c[0].id == a { (&c[0], &c[1]) } else { (&c[1], &c[0]) };
    assert_eq!((ca.attempts, cb.id), (2, b));
    let (start, end) = (now + chrono::Duration::seconds(1), now + chrono::Duration::seconds(3));
    let ok = Finished { id: a, attempt: 2, started_at: start, finished_at: end, outcome: Finish::Succeeded };
    let q = Finish::Quarantined { class: ErrorClass::Invalid, message: "bad row".into() };
    let stale = Finished { attempt: 1, ..ok.clone() };
    let mut applied = queue::finish(&db.pool, "w", &[stale, ok, done(cb, q)]).await.unwrap();
    applied.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(applied, want, "the stale success (attempt 1) is not applied");

    let mut conn = db.pool.acquire().await.unwrap();
    let row = queue::get(&mut conn, a).await.unwrap();
    assert_eq!(row.state, "succeeded");
    assert_eq!((row.last_error_class, row.last_error_message), (None, None));
    let micros = |d: chrono::DateTime<Utc>| d.timestamp_micros();
    assert_eq!(row.started_at.map(micros), Some(micros(start)));
    assert_eq!(row.finished_at.map(micros), Some(micros(end)));
    let history = queue::attempts(&mut conn, a).await.unwrap();
    let outcomes: Vec<_> = history.iter().map(|h| (h.attempt, h.outcome.as_str())).collect();
    assert_eq!(outcomes, vec![(1, "failed"), (2, "succeeded")]);
    assert_eq!(history[1].duration_ms, 2000);
    assert_eq!(state(&db, b).await, ("quarantined".into(), 1));
}
