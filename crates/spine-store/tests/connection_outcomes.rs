//! What jobs' outcomes do to the connection they name (decision 0022, issue 3 item 3 and issue 5
//! item 7), through the queue's own `finish` on a real PostgreSQL: an auth failure disables the
//! connection with the reason; failures in a row degrade it, a success brings it back, failing
//! past the window disables it; rate limits and deferrals are use, not failure; every status
//! change is an event; references to connections are checked and cleared like the others.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_store::Store;
use spine_store::queue::{self, Finish, Finished, NewJob};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

struct Env {
    db: spine_testkit::TestDb,
    store: Store,
    tenant: TenantId,
    conn: Uuid,
}

async fn setup() -> Env {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'co', 'C')")
        .bind(tenant.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let conn = connection(&db, tenant, "api").await;
    let store = Store::new(db.pool.clone());
    Env { db, store, tenant, conn }
}

async fn connection(db: &spine_testkit::TestDb, tenant: TenantId, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO qiconnect.connections (tenant_id, connector_type, name, config, created_by, updated_by)
         VALUES ($1, 'http_json', $2, '{\"base_url\": \"http://127.0.0.1:9/\"}', 'user:setup', 'user:setup') RETURNING id",
    )
    .bind(tenant.as_uuid())
    .bind(name)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Enqueues a job naming the connection, claims it and records `outcome` for it; returns its id.
async fn run(env: &Env, kind: &str, outcome: Finish) -> Uuid {
    let mut job = NewJob::new(env.tenant, kind, json!({}));
    job.connection_id = Some(env.conn);
    let mut tx = env.store.tenant_tx(env.tenant).await.unwrap();
    let id = queue::enqueue(tx.conn(), &job).await.unwrap().id();
    tx.commit().await.unwrap();
    let claimed = queue::claim(&env.db.pool, "w", None, 10, LEASE).await.unwrap();
    let j = claimed.iter().find(|j| j.id == id).expect("claimed");
    assert_eq!(j.connection_id, Some(env.conn));
    let f = Finished { id, attempt: j.attempts, started_at: j.started_at, finished_at: Utc::now(), outcome };
    assert_eq!(queue::finish(&env.db.pool, "w", &[f]).await.unwrap(), vec![id]);
    id
}

fn fail(class: ErrorClass) -> Finish {
    Finish::Quarantined { class, message: format!("{class} trouble") }
}

#[derive(Debug, sqlx::FromRow)]
struct Status {
    status: String,
    is_active: bool,
    status_reason: Option<String>,
    consecutive_failures: i32,
    last_error_class: Option<String>,
}

async fn status(env: &Env) -> Status {
    sqlx::query_as(
        "SELECT status, is_active, status_reason, consecutive_failures, last_error_class
         FROM qiconnect.connections WHERE id = $1",
    )
    .bind(env.conn)
    .fetch_one(&env.db.pool)
    .await
    .unwrap()
}

/// (from, to, actor) of every event of the connection, oldest first.
async fn events(env: &Env) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT from_status, to_status, actor FROM qiconnect.connection_events WHERE connection_id = $1
         ORDER BY created_at, id",
    )
    .bind(env.conn)
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

fn ev(from: &str, to: &str, actor: &str) -> (String, String, Option<String>) {
    (from.into(), to.into(), Some(actor.into()))
}

#[tokio::test]
async fn an_auth_failure_disables_the_connection_with_the_reason() {
    let env = setup().await;
    let ok = run(&env, "sync.pull", Finish::Succeeded).await;
    assert_eq!(status(&env).await.status, "active");
    let used: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM qiconnect.connections WHERE id = $1")
            .bind(env.conn)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert!(used.is_some(), "a call through the connection marks it used (job {ok})");

    let bad = run(&env, "sync.pull", fail(ErrorClass::Auth)).await;
    let s = status(&env).await;
    assert_eq!((s.status.as_str(), s.is_active), ("disabled", false));
    let reason = s.status_reason.unwrap();
    assert!(reason.contains("authentication failed") && reason.contains(&bad.to_string()), "{reason}");
    assert!(reason.contains("sync.pull") && reason.contains("auth trouble"), "{reason}");
    assert_eq!(events(&env).await, vec![ev("active", "disabled", &format!("job:{bad}"))]);

    // Outcomes of jobs on a disabled connection change nothing; enabling it is an event too.
    run(&env, "sync.pull", fail(ErrorClass::Server)).await;
    assert_eq!(status(&env).await.consecutive_failures, 1);
    sqlx::query(
        "UPDATE qiconnect.connections SET status = 'active', is_active = true, status_reason = NULL,
                updated_by = 'user:ops' WHERE id = $1",
    )
    .bind(env.conn)
    .execute(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(events(&env).await.last(), Some(&ev("disabled", "active", "user:ops")));
}

#[tokio::test]
async fn failures_in_a_row_degrade_then_disable_and_a_success_recovers() {
    let env = setup().await;
    sqlx::query("UPDATE qiconnect.connections SET degrade_after_failures = 2, disable_after = '1 hour' WHERE id = $1")
        .bind(env.conn)
        .execute(&env.db.pool)
        .await
        .unwrap();
    run(&env, "sync.pull", fail(ErrorClass::Server)).await;
    let s = status(&env).await;
    assert_eq!((s.status.as_str(), s.consecutive_failures), ("active", 1));
    // Rate limits and deferrals are use, not failure.
    run(&env, "sync.pull", Finish::Quarantined { class: ErrorClass::RateLimited, message: "429".into() }).await;
    let deferred =
        Finish::Deferred { message: "over the limit".into(), run_at: Utc::now() + chrono::TimeDelta::hours(1) };
    let d = run(&env, "sync.pull", deferred).await;
    let (state, attempts): (String, i32) = sqlx::query_as("SELECT state, attempts FROM qiserver.jobs WHERE id = $1")
        .bind(d)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("queued", 0), "a deferral does not use up an attempt");
    assert_eq!(status(&env).await.consecutive_failures, 1);

    let second = run(&env, "sync.pull", fail(ErrorClass::Timeout)).await;
    let s = status(&env).await;
    assert_eq!((s.status.as_str(), s.is_active, s.consecutive_failures), ("degraded", true, 2));
    assert_eq!(s.last_error_class.as_deref(), Some("timeout"));
    assert!(s.status_reason.unwrap().starts_with("2 calls in a row failed; last: timeout"));

    let good = run(&env, "sync.pull", Finish::Succeeded).await;
    let s = status(&env).await;
    assert_eq!((s.status.as_str(), s.consecutive_failures, s.status_reason), ("active", 0, None));

    // Failing again: degraded at the second failure; disabled once failing for disable_after.
    run(&env, "sync.pull", fail(ErrorClass::Network)).await;
    let again = run(&env, "sync.pull", fail(ErrorClass::Network)).await;
    assert_eq!(status(&env).await.status, "degraded");
    let still = run(&env, "sync.pull", fail(ErrorClass::Invalid)).await;
    assert_eq!(status(&env).await.status, "degraded", "failing for less than the window");
    sqlx::query("UPDATE qiconnect.connections SET failing_since = now() - interval '2 hours' WHERE id = $1")
        .bind(env.conn)
        .execute(&env.db.pool)
        .await
        .unwrap();
    let last = run(&env, "sync.pull", fail(ErrorClass::Server)).await;
    let s = status(&env).await;
    assert_eq!((s.status.as_str(), s.is_active, s.consecutive_failures), ("disabled", false, 4));
    assert!(s.status_reason.unwrap().contains("calls have failed since"));
    assert_eq!(
        events(&env).await,
        vec![
            ev("active", "degraded", &format!("job:{second}")),
            ev("degraded", "active", &format!("job:{good}")),
            ev("active", "degraded", &format!("job:{again}")),
            ev("degraded", "disabled", &format!("job:{last}")),
        ]
    );
    let _ = still;
}

#[tokio::test]
async fn connection_references_are_checked_and_cleared() {
    let env = setup().await;
    // A connection of another tenant (or none at all) cannot be named.
    let other = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'o', 'O')")
        .bind(other.as_uuid())
        .execute(&env.db.pool)
        .await
        .unwrap();
    let theirs = connection(&env.db, other, "theirs").await;
    for c in [theirs, Uuid::new_v4()] {
        let mut job = NewJob::new(env.tenant, "sync.pull", json!({}));
        job.connection_id = Some(c);
        let mut tx = env.store.tenant_tx(env.tenant).await.unwrap();
        let err = queue::enqueue(tx.conn(), &job).await.unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
    // Deleting the connection keeps the job and clears its reference.
    let id = run(&env, "sync.pull", Finish::Succeeded).await;
    sqlx::query("DELETE FROM qiconnect.connections WHERE id = $1").bind(env.conn).execute(&env.db.pool).await.unwrap();
    let c: Option<Uuid> = sqlx::query_scalar("SELECT connection_id FROM qiserver.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(c, None);
    let blocked = queue::blocked_connection(&env.db.pool, env.conn).await.unwrap();
    assert_eq!(blocked, None, "a deleted connection blocks nothing");
}
