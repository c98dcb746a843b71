//! Cron schedules on a real PostgreSQL: CRUD under RLS, validation, pause/resume, trigger now, and
//! the scheduler step's catch-up semantics and single firing under concurrency.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use spine_core::cron::CatchUp;
use spine_core::ids::TenantId;
use spine_store::queue::schedules::{self, NewSchedule};
use spine_store::{Store, StoreError};
use uuid::Uuid;

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

async fn setup() -> (spine_testkit::TestDb, Store, TenantId) {
    let db = spine_testkit::test_db().await;
    let t = tenant(&db, "st").await;
    let store = Store::new(db.pool.clone());
    (db, store, t)
}

async fn create(store: &Store, new: NewSchedule) -> Result<schedules::ScheduleRow, StoreError> {
    let mut tx = store.tenant_tx(new.tenant).await.unwrap();
    let row = schedules::create(tx.conn(), &new).await?;
    tx.commit().await.unwrap();
    Ok(row)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn set_next(db: &spine_testkit::TestDb, id: Uuid, at: DateTime<Utc>) {
    sqlx::query("UPDATE qiserver.job_schedules SET next_run_at = $2 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(&db.pool)
        .await
        .unwrap();
}

/// (run_at, dedupe_key) of the schedule's jobs, by run_at.
async fn jobs_of(db: &spine_testkit::TestDb, id: Uuid) -> Vec<(DateTime<Utc>, Option<String>)> {
    sqlx::query_as("SELECT run_at, dedupe_key FROM qiserver.jobs WHERE schedule_id = $1 ORDER BY run_at")
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn crud_is_tenant_scoped() {
    let (db, store, t) = setup().await;
    let other = tenant(&db, "other").await;
    let before = Utc::now();
    let mut new = NewSchedule::new(t, " nightly ", "report.build", "30 2 * * *");
    new.timezone = "Europe/Berlin".into();
    new.payload = json!({"type": "report.v1"});
    new.catch_up = CatchUp::RunOnce;
    let a = create(&store, new.clone()).await.unwrap();
    assert_eq!((a.name.as_str(), a.timezone.as_str(), a.catch_up()), ("nightly", "Europe/Berlin", CatchUp::RunOnce));
    let next = a.next_run_at.unwrap();
    assert!(next > before && next <= before + TimeDelta::days(1) + TimeDelta::hours(1), "{next}");
    assert!(matches!(create(&store, new).await, Err(StoreError::Conflict(m)) if m.contains("nightly")));
    let b = create(&store, NewSchedule::new(other, "nightly", "report.build", "0 * * * *")).await.unwrap();

    let mut tx = store.tenant_tx(t).await.unwrap();
    let mine = schedules::list(tx.conn(), None).await.unwrap();
    assert_eq!(mine.iter().map(|s| s.id).collect::<Vec<_>>(), [a.id]);
    assert!(matches!(schedules::get(tx.conn(), b.id).await, Err(StoreError::NotFound)));
    assert!(matches!(schedules::delete(tx.conn(), b.id).await, Err(StoreError::NotFound)));
    assert!(matches!(schedules::set_enabled(tx.conn(), b.id, false).await, Err(StoreError::NotFound)));
    assert!(matches!(schedules::trigger_now(tx.conn(), b.id).await, Err(StoreError::NotFound)));
    assert_eq!(schedules::get(tx.conn(), a.id).await.unwrap().cron_expression, "30 2 * * *");
    tx.commit().await.unwrap();

    let mut sys = store.system_tx().await.unwrap();
    assert_eq!(schedules::list(sys.conn(), None).await.unwrap().len(), 2);
    assert_eq!(schedules::list(sys.conn(), Some(other)).await.unwrap()[0].id, b.id);
    schedules::delete(sys.conn(), b.id).await.unwrap();
    assert!(matches!(schedules::get(sys.conn(), b.id).await, Err(StoreError::NotFound)));
    sys.commit().await.unwrap();
}

#[tokio::test]
async fn invalid_input_is_refused_with_the_field() {
    let (_db, store, t) = setup().await;
    let base = NewSchedule::new(t, "s", "demo", "* * * * *");
    let cases: Vec<(NewSchedule, &str)> = vec![
        (NewSchedule { cron_expression: "* * * *".into(), ..base.clone() }, "cron_expression"),
        (NewSchedule { cron_expression: "99 * * * *".into(), ..base.clone() }, "cron_expression"),
        (NewSchedule { cron_expression: "0 0 30 2 *".into(), ..base.clone() }, "never fires"),
        (NewSchedule { timezone: "Mars/Olympus".into(), ..base.clone() }, "timezone"),
        (NewSchedule { kind: "Bad Kind".into(), ..base.clone() }, "kind"),
        (NewSchedule { name: "  ".into(), ..base.clone() }, "name"),
        (NewSchedule { name: "x".repeat(201), ..base.clone() }, "name"),
        (NewSchedule { payload: json!([1]), ..base.clone() }, "payload"),
    ];
    for (new, needle) in cases {
        match create(&store, new).await {
            Err(StoreError::Invalid(m)) => assert!(m.contains(needle), "{needle}: {m}"),
            other => panic!("{needle}: expected Invalid, got {other:?}"),
        }
    }
    create(&store, base).await.unwrap();
}

#[tokio::test]
async fn pause_stops_firing_and_resume_starts_from_now() {
    let (db, store, t) = setup().await;
    let s = create(&store, NewSchedule::new(t, "s", "demo", "* * * * * *")).await.unwrap();
    let mut tx = store.tenant_tx(t).await.unwrap();
    let paused = schedules::set_enabled(tx.conn(), s.id, false).await.unwrap();
    assert!(!paused.enabled);
    assert_eq!(schedules::set_enabled(tx.conn(), s.id, false).await.unwrap().updated_at, paused.updated_at);
    tx.commit().await.unwrap();

    let long_ago = Utc::now() - TimeDelta::hours(1);
    set_next(&db, s.id, long_ago).await;
    assert!(schedules::fire_due(&db.pool, Utc::now(), 100).await.unwrap().is_empty());
    assert_eq!(schedules::next_due_at(&db.pool).await.unwrap(), None);

    let mut tx = store.tenant_tx(t).await.unwrap();
    let before = Utc::now();
    let resumed = schedules::set_enabled(tx.conn(), s.id, true).await.unwrap();
    tx.commit().await.unwrap();
    assert!(resumed.enabled && resumed.next_run_at.unwrap() > before, "{:?}", resumed.next_run_at);
    assert_eq!(schedules::next_due_at(&db.pool).await.unwrap(), resumed.next_run_at);
    assert!(jobs_of(&db, s.id).await.is_empty());
}

#[tokio::test]
async fn trigger_now_enqueues_one_job_outside_the_ticks() {
    let (db, store, t) = setup().await;
    let mut new = NewSchedule::new(t, "s", "demo.run", "0 3 * * *");
    new.payload = json!({"type": "demo.v1", "n": 1});
    new.enabled = false;
    let s = create(&store, new).await.unwrap();
    let mut tx = store.tenant_tx(t).await.unwrap();
    let job = schedules::trigger_now(tx.conn(), s.id).await.unwrap().id();
    tx.commit().await.unwrap();
    let (kind, payload, schedule, tenant): (String, serde_json::Value, Option<Uuid>, Uuid) =
        sqlx::query_as("SELECT kind, payload, schedule_id, tenant_id FROM qiserver.jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), payload, schedule, tenant),
        ("demo.run", json!({"type": "demo.v1", "n": 1}), Some(s.id), t.as_uuid())
    );
    let mut sys = store.system_tx().await.unwrap();
    let after = schedules::get(sys.conn(), s.id).await.unwrap();
    assert_eq!((after.last_run_at, after.last_job_id, after.next_run_at), (None, None, s.next_run_at));
    // Deleting the schedule keeps its jobs.
    schedules::delete(sys.conn(), s.id).await.unwrap();
    sys.commit().await.unwrap();
    let left: Option<Uuid> = sqlx::query_scalar("SELECT schedule_id FROM qiserver.jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, None);
}

#[tokio::test]
async fn after_downtime_skip_drops_missed_ticks_and_run_once_fires_one() {
    let (db, store, t) = setup().await;
    let mut new = NewSchedule::new(t, "skip", "demo", "0 3 * * *");
    let skip = create(&store, new.clone()).await.unwrap();
    new.name = "once".into();
    new.catch_up = CatchUp::RunOnce;
    let once = create(&store, new).await.unwrap();
    // Down from before the 2nd's tick until the 5th, 10:00: four ticks missed.
    for s in [skip.id, once.id] {
        set_next(&db, s, utc("2026-01-02T03:00:00Z")).await;
    }
    let now = utc("2026-01-05T10:00:00Z");
    let fired = schedules::fire_due(&db.pool, now, 100).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0].schedule_id, fired[0].tick), (once.id, utc("2026-01-05T03:00:00Z")));
    let key = format!("schedule:{}:2026-01-05T03:00:00Z", once.id);
    assert_eq!(jobs_of(&db, once.id).await, [(utc("2026-01-05T03:00:00Z"), Some(key))]);
    assert!(jobs_of(&db, skip.id).await.is_empty());
    let mut sys = store.system_tx().await.unwrap();
    for (id, last) in [(skip.id, None), (once.id, Some(utc("2026-01-05T03:00:00Z")))] {
        let row = schedules::get(sys.conn(), id).await.unwrap();
        assert_eq!((row.next_run_at, row.last_run_at), (Some(utc("2026-01-06T03:00:00Z")), last));
    }
    assert_eq!(schedules::get(sys.conn(), once.id).await.unwrap().last_job_id, Some(fired[0].job_id));
    sys.commit().await.unwrap();
    // Nothing more at the same instant; both fire their next tick, even 30 s late, once.
    assert!(schedules::fire_due(&db.pool, now, 100).await.unwrap().is_empty());
    let fired = schedules::fire_due(&db.pool, utc("2026-01-06T03:00:30Z"), 100).await.unwrap();
    assert_eq!(fired.len(), 2);
    assert!(fired.iter().all(|f| f.tick == utc("2026-01-06T03:00:00Z") && !f.duplicate));
}

#[tokio::test]
async fn late_ticks_each_fire_within_the_budget_and_the_dedupe_key_guards() {
    let (db, store, t) = setup().await;
    let s = create(&store, NewSchedule::new(t, "s", "demo", "* * * * * *")).await.unwrap();
    let start = utc("2026-01-01T00:00:00Z");
    set_next(&db, s.id, start).await;
    // 10 late ticks, at most 4 per call: 4 + 4 + 2, in order, nothing lost.
    let now = start + TimeDelta::seconds(9);
    let mut got = Vec::new();
    for expect in [4, 4, 2, 0] {
        let fired = schedules::fire_due(&db.pool, now, 4).await.unwrap();
        assert_eq!(fired.len(), expect);
        got.extend(fired.into_iter().map(|f| f.tick));
    }
    let want: Vec<_> = (0..10).map(|i| start + TimeDelta::seconds(i)).collect();
    assert_eq!(got, want);
    assert_eq!(jobs_of(&db, s.id).await.len(), 10);
    // Rewinding next_run_at onto ticks whose jobs are still queued enqueues nothing new.
    set_next(&db, s.id, start).await;
    let again = schedules::fire_due(&db.pool, now, 100).await.unwrap();
    assert_eq!(again.len(), 10);
    assert!(again.iter().all(|f| f.duplicate));
    assert_eq!(jobs_of(&db, s.id).await.len(), 10);
}

#[tokio::test]
async fn concurrent_callers_fire_each_tick_once() {
    let (db, store, t) = setup().await;
    let s = create(&store, NewSchedule::new(t, "s", "demo", "* * * * * *")).await.unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(6).connect_with(db.options.clone()).await.unwrap();
    let start = utc("2026-01-01T00:00:00Z");
    set_next(&db, s.id, start).await;
    let rounds = 20;
    let mut fired = Vec::new();
    for r in 0..rounds {
        let now = start + TimeDelta::seconds(r) + TimeDelta::milliseconds(300);
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { schedules::fire_due(&pool, now, 100).await.unwrap() })
            })
            .collect();
        for task in tasks {
            fired.extend(task.await.unwrap());
        }
    }
    let mut ticks: Vec<_> = fired.iter().map(|f| f.tick).collect();
    ticks.sort();
    let want: Vec<_> = (0..rounds).map(|i| start + TimeDelta::seconds(i)).collect();
    assert_eq!(ticks, want, "each tick fired once");
    assert!(fired.iter().all(|f| !f.duplicate));
    let jobs = jobs_of(&db, s.id).await;
    assert_eq!(jobs.iter().map(|j| j.0).collect::<Vec<_>>(), want);
}
