//! Per-connection rate limits on a real PostgreSQL (decision 0024): one limit shared by several
//! pools (worker processes), a sliding (not fixed) window, a remote 429's back-off, the counters,
//! and tenant isolation of the state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_pipeline::ratelimit::RateLimiter;
use spine_store::repos::rate_limits::{self, Acquire, Wait, WaitReason};
use spine_store::{Store, StoreError};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

const MINUTE: Duration = Duration::from_secs(60);

async fn tenant(db: &spine_testkit::TestDb, slug: &str) -> TenantId {
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name, integrations_enabled) VALUES ($1, $2, $2, true)")
        .bind(t.as_uuid())
        .bind(slug)
        .execute(&db.pool)
        .await
        .unwrap();
    t
}

/// A connection row, written as the owner (the limiter only needs it to exist).
async fn connection(db: &spine_testkit::TestDb, t: TenantId, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO qiconnect.connections (tenant_id, connector_type, name) VALUES ($1, 'http_json', $2) RETURNING id",
    )
    .bind(t.as_uuid())
    .bind(name)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn setup() -> (spine_testkit::TestDb, Store, TenantId, Uuid) {
    let db = spine_testkit::test_db().await;
    let t = tenant(&db, "ta").await;
    let c = connection(&db, t, "api").await;
    let store = Store::new(db.pool.clone());
    (db, store, t, c)
}

/// Separate pools, as separate worker processes would have.
async fn pools(db: &spine_testkit::TestDb, n: usize, size: u32) -> Vec<Store> {
    let mut out = Vec::new();
    for _ in 0..n {
        let pool = PgPoolOptions::new().max_connections(size).connect_with(db.options.clone()).await.unwrap();
        out.push(Store::new(pool));
    }
    out
}

fn wait(a: Acquire) -> Wait {
    match a {
        Acquire::Wait(w) => w,
        Acquire::Admitted { at } => panic!("admitted at {at}, expected a wait"),
    }
}

fn admitted(a: Acquire) -> chrono::DateTime<Utc> {
    match a {
        Acquire::Admitted { at } => at,
        Acquire::Wait(w) => panic!("expected admission, got {w:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_limit_calls_are_admitted_across_processes() {
    let (db, store, t, c) = setup().await;
    const LIMIT: u32 = 10;
    const CALLS: usize = 48;
    let stores = pools(&db, 4, 3).await;
    let start = Arc::new(tokio::sync::Barrier::new(CALLS));
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let store = stores[i % stores.len()].clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            rate_limits::acquire_now(&store, t, c, Some(LIMIT), MINUTE).await.unwrap()
        }));
    }
    let mut ins = Vec::new();
    let mut waits = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Acquire::Admitted { at } => ins.push(at),
            Acquire::Wait(w) => waits.push(w),
        }
    }
    assert_eq!(ins.len(), LIMIT as usize, "admitted: {ins:?}");
    assert_eq!(waits.len(), CALLS - LIMIT as usize);
    // Every refused call may go again when the oldest admitted call leaves the window.
    let oldest = *ins.iter().min().unwrap();
    for w in &waits {
        assert_eq!(w.reason, WaitReason::Window);
        assert_eq!(w.until, oldest + MINUTE, "{w:?}");
        assert!(w.retry_after > Duration::ZERO && w.retry_after <= MINUTE, "{w:?}");
    }
    let mut tx = store.tenant_tx(t).await.unwrap();
    let s = rate_limits::stats(&mut tx, c).await.unwrap().unwrap();
    assert_eq!((s.calls_last_minute, s.admitted_calls, s.hits, s.remote_429s), (10, 10, 38, 0));
    // The library says the same as a job error: rate limited, retry after the wait, not a failure.
    let e = RateLimiter::new(store.clone()).check(t, c, Some(LIMIT)).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert!(e.deferred, "over the limit is a deferral, not a failure");
    let d = e.retry_after.unwrap();
    assert!(d > Duration::from_secs(50) && d <= MINUTE, "{e:?}");
    // A higher limit (another connection config) admits more on the same log.
    assert!(matches!(
        rate_limits::acquire_now(&store, t, c, Some(LIMIT + 1), MINUTE).await.unwrap(),
        Acquire::Admitted { .. }
    ));
}

#[tokio::test]
async fn the_window_slides() {
    let (_db, store, t, c) = setup().await;
    let window = Duration::from_secs(2);
    let acquire = || rate_limits::acquire_now(&store, t, c, Some(2), window);
    let a = admitted(acquire().await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = admitted(acquire().await.unwrap());
    let w = wait(acquire().await.unwrap());
    assert_eq!(w.until, a + window, "free again when the oldest call leaves the window");
    assert!(w.retry_after <= window - Duration::from_millis(600), "{w:?}");

    // The assertion is about time passing: wait until the first call has left the window.
    tokio::time::sleep(w.retry_after + Duration::from_millis(20)).await;
    let d = admitted(acquire().await.unwrap());
    assert!(d >= a + window);
    // A fixed window would have started afresh; the sliding one still holds b.
    let w = wait(acquire().await.unwrap());
    assert_eq!(w.until, b + window);
    tokio::time::sleep(w.retry_after + Duration::from_millis(20)).await;
    admitted(acquire().await.unwrap());
}

#[tokio::test]
async fn a_remote_429_blocks_until_its_retry_after_clamped() {
    let db = spine_testkit::test_db().await;
    let t = tenant(&db, "tb").await;
    let store = Store::new(db.pool.clone());
    let limiter = RateLimiter::new(store.clone());
    let blocked_for = |c: Uuid| {
        let limiter = limiter.clone();
        async move {
            let s = limiter.stats(t, c).await.unwrap().unwrap();
            (s.blocked_until.expect("blocked") - Utc::now()).to_std().unwrap()
        }
    };
    let near = |d: Duration, want: u64| d.abs_diff(Duration::from_secs(want)) < Duration::from_secs(3);

    // Too long a Retry-After is clamped to an hour; the job error carries the wait.
    let c = connection(&db, t, "long").await;
    let e = limiter.on_response_429(t, c, Some("7200")).await;
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert!(near(e.retry_after.unwrap(), 3600), "{e:?}");
    assert!(near(blocked_for(c).await, 3600));
    let w = wait(limiter.acquire(t, c, Some(60)).await.unwrap());
    assert_eq!(w.reason, WaitReason::RemoteBackoff);
    assert_eq!(Some(w.until), limiter.stats(t, c).await.unwrap().unwrap().blocked_until);
    let e = limiter.check(t, c, None).await.unwrap_err();
    assert!(near(e.retry_after.unwrap(), 3600), "no own limit still honours the remote: {e:?}");
    // A later, shorter Retry-After does not shorten the back-off.
    let e = limiter.on_response_429(t, c, Some("5")).await;
    assert!(near(e.retry_after.unwrap(), 3600), "{e:?}");

    // Absent or unreadable: 60 s. An HTTP date: until then.
    let c = connection(&db, t, "absent").await;
    assert!(near(limiter.on_response_429(t, c, None).await.retry_after.unwrap(), 60));
    let c = connection(&db, t, "garbage").await;
    assert!(near(limiter.on_response_429(t, c, Some("soon")).await.retry_after.unwrap(), 60));
    let c = connection(&db, t, "date").await;
    let date = (Utc::now() + chrono::Duration::seconds(90)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    assert!(near(limiter.on_response_429(t, c, Some(&date)).await.retry_after.unwrap(), 90));
    assert!(near(blocked_for(c).await, 90));

    // Zero is clamped up to one second; after it calls are admitted again, and the calls refused
    // meanwhile took no place in the window (limit 1).
    let c = connection(&db, t, "short").await;
    let e = limiter.on_response_429(t, c, Some("0")).await;
    assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
    let began = Instant::now();
    let w = wait(limiter.acquire(t, c, Some(1)).await.unwrap());
    assert_eq!(w.reason, WaitReason::RemoteBackoff);
    assert!(w.retry_after <= Duration::from_secs(1));
    wait(limiter.acquire(t, c, Some(1)).await.unwrap());
    limiter.check_or_wait(t, c, Some(1), Duration::from_secs(2)).await.unwrap();
    assert!(began.elapsed() >= w.retry_after, "check_or_wait slept out the back-off");
    let s = limiter.stats(t, c).await.unwrap().unwrap();
    assert_eq!((s.admitted_calls, s.remote_429s, s.blocked_until), (1, 1, None));
    assert!(s.hits >= 2, "{s:?}");
}

#[tokio::test]
async fn hits_and_429s_are_counted_per_connection() {
    let (db, store, t, c) = setup().await;
    let other = connection(&db, t, "other").await;
    let limiter = RateLimiter::new(store.clone());
    assert_eq!(limiter.stats(t, c).await.unwrap(), None, "no row before first use");
    for _ in 0..2 {
        limiter.check(t, c, Some(2)).await.unwrap();
    }
    for _ in 0..3 {
        assert_eq!(limiter.check(t, c, Some(2)).await.unwrap_err().class, ErrorClass::RateLimited);
    }
    limiter.on_response_429(t, c, Some("30")).await;
    limiter.on_response_429(t, c, None).await;
    limiter.check(t, c, Some(100)).await.unwrap_err(); // blocked: a hit, not an admission
    limiter.check(t, other, Some(2)).await.unwrap();
    let s = limiter.stats(t, c).await.unwrap().unwrap();
    assert_eq!((s.calls_last_minute, s.admitted_calls, s.hits, s.remote_429s), (2, 2, 4, 2));
    assert!(s.last_429_at.is_some() && s.blocked_until.is_some());
    let s = limiter.stats(t, other).await.unwrap().unwrap();
    assert_eq!((s.calls_last_minute, s.admitted_calls, s.hits, s.remote_429s), (1, 1, 0, 0));
}

#[tokio::test]
async fn another_tenant_can_neither_see_nor_touch_the_state() {
    let (db, store, a, c) = setup().await;
    let b = tenant(&db, "tz").await;
    let limiter = RateLimiter::new(store.clone());
    limiter.check(a, c, Some(5)).await.unwrap();
    limiter.on_response_429(a, c, Some("600")).await;
    let before = limiter.stats(a, c).await.unwrap().unwrap();

    assert_eq!(limiter.stats(b, c).await.unwrap(), None);
    let err = limiter.acquire(b, c, Some(5)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(limiter.check(b, c, Some(5)).await.unwrap_err().class, ErrorClass::Internal);
    let mut tx = store.tenant_tx(b).await.unwrap();
    let err = rate_limits::record_remote_429(&mut tx, c, Some(Duration::from_secs(5))).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    drop(tx);
    let mut tx = store.tenant_tx(b).await.unwrap();
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM qiconnect.connection_rate_limits").fetch_one(tx.conn()).await.unwrap();
    let changed = sqlx::query("UPDATE qiconnect.connection_rate_limits SET blocked_until = NULL, hits = 0")
        .execute(tx.conn())
        .await
        .unwrap()
        .rows_affected();
    let deleted =
        sqlx::query("DELETE FROM qiconnect.connection_rate_limits").execute(tx.conn()).await.unwrap().rows_affected();
    tx.commit().await.unwrap();
    assert_eq!((seen, changed, deleted), (0, 0, 0));
    // A row for a's connection cannot be written from b's transaction, not even claiming tenant a.
    let fresh = connection(&db, a, "fresh").await;
    let mut tx = store.tenant_tx(b).await.unwrap();
    let forged = sqlx::query("INSERT INTO qiconnect.connection_rate_limits (connection_id, tenant_id) VALUES ($1, $2)")
        .bind(fresh)
        .bind(a.as_uuid())
        .execute(tx.conn())
        .await
        .unwrap_err();
    assert_eq!(forged.as_database_error().and_then(|e| e.code()).as_deref(), Some("42501"), "{forged}");
    drop(tx);
    assert_eq!(limiter.stats(a, c).await.unwrap().unwrap(), before);

    // The row goes with its connection.
    sqlx::query("DELETE FROM qiconnect.connections WHERE id = $1").bind(c).execute(&db.pool).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM qiconnect.connection_rate_limits").fetch_one(&db.pool).await.unwrap();
    assert_eq!(left, 0);
}
