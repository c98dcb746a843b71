//! Cron single-fire across processes: three scheduler processes (this test binary, re-run as
//! children) race on one per-second schedule for several seconds; every tick between the first and
//! the last fired one has exactly one job.

use spine_testkit::Children;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use spine_core::ids::TenantId;
use spine_pipeline::Supervisor;
use spine_pipeline::cron::{Scheduler, SchedulerConfig};
use spine_store::Store;
use spine_store::queue::schedules::{self, NewSchedule};
use sqlx::ConnectOptions;
use uuid::Uuid;

/// Set (to a database URL) in the children only.
const CHILD_ENV: &str = "SPINE_CRON_CHILD";
const PROCESSES: usize = 3;
const RUN_FOR: Duration = Duration::from_secs(9);

/// A scheduler process when `SPINE_CRON_CHILD` is set; otherwise (a normal test run) it does
/// nothing. The parent kills it; it also stops by itself after a minute.
#[test]
fn scheduler_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
        let supervisor = Supervisor::new();
        let scheduler = Scheduler::new(pool, SchedulerConfig::default());
        let _ = tokio::time::timeout(Duration::from_secs(60), scheduler.run(supervisor.shutdown_handle())).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_scheduler_processes_fire_each_tick_exactly_once() {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'cron', 'Cron')")
        .bind(tenant.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let store = Store::new(db.pool.clone());
    let mut tx = store.system_tx().await.unwrap();
    let schedule = schedules::create(tx.conn(), &NewSchedule::new(tenant, "every second", "demo.tick", "* * * * * *"))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let url = db.options.to_url_lossy().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut children = Children(Vec::new());
    for _ in 0..PROCESSES {
        let child = Command::new(&exe)
            .args(["--exact", "scheduler_child", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        children.0.push(child);
    }
    tokio::time::sleep(RUN_FOR).await;
    for c in &mut children.0 {
        assert!(c.try_wait().unwrap().is_none(), "a scheduler process exited early");
    }
    drop(children); // kill -9, mid-transaction or not

    let jobs: Vec<(DateTime<Utc>, Option<String>)> =
        sqlx::query_as("SELECT run_at, dedupe_key FROM qiserver.jobs WHERE schedule_id = $1 ORDER BY run_at")
            .bind(schedule.id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let ticks: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.0).collect();
    assert!(ticks.len() >= 6, "too few ticks fired in {RUN_FOR:?}: {ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], TimeDelta::seconds(1), "a duplicate or a gap: {ticks:?}");
    }
    for (tick, key) in &jobs {
        let want = format!("schedule:{}:{}", schedule.id, tick.to_rfc3339_opts(SecondsFormat::Secs, true));
        assert_eq!(key.as_deref(), Some(want.as_str()));
    }
    let last: (Option<DateTime<Utc>>, Option<Uuid>) =
        sqlx::query_as("SELECT last_run_at, last_job_id FROM qiserver.job_schedules WHERE id = $1")
            .bind(schedule.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(last.0, ticks.last().copied());
    assert!(last.1.is_some());
}
