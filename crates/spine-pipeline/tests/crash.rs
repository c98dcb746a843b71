//! Crash test: three worker processes work through 10,000 jobs whose handler writes a mark keyed
//! by (job id, attempt); a random worker is killed with SIGKILL again and again and replaced. At
//! the end every job succeeded, none was lost, and every mark beyond the one of the succeeding
//! attempt is explained by an attempt that the history shows as `lease_expired`.
//!
//! The worker processes are this test binary itself, running `crash_worker_child` with
//! `SPINE_CRASH_WORKER` set (without it, that test returns at once).

use spine_testkit::Children;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::{ErrorClass, JobError, RetryPolicy};
use spine_pipeline::Supervisor;
use spine_pipeline::worker::{Handlers, Worker, WorkerConfig};
use spine_store::Store;
use spine_store::queue::{self, NewJob};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const JOBS: usize = 10_000;
const WORKERS: usize = 3;
const LEASE: Duration = Duration::from_secs(2);

/// A worker process (only when started by `kill_9_workers_lose_nothing`).
#[test]
fn crash_worker_child() {
    let (Ok(url), Ok(db), Ok(id)) =
        (std::env::var("SPINE_CRASH_WORKER"), std::env::var("SPINE_CRASH_DB"), std::env::var("SPINE_CRASH_ID"))
    else {
        return;
    };
    // Go when the parent does (its end of our stdin closes).
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let options = PgConnectOptions::from_str(&url).unwrap().database(&db);
        let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await.unwrap();
        let handlers = Handlers::new().register("mark", RetryPolicy::default(), |ctx| async move {
            // A little work before the mark, so that kills land mid-handler too.
            let work = rand::thread_rng().gen_range(0..4);
            tokio::time::sleep(Duration::from_millis(work)).await;
            sqlx::query(
                "INSERT INTO public_test_marks (job_id, attempt) VALUES ($1, $2)
                 ON CONFLICT (job_id, attempt) DO UPDATE SET dups = public_test_marks.dups + 1",
            )
            .bind(ctx.id)
            .bind(ctx.attempt)
            .execute(ctx.store.pool())
            .await
            .map_err(|e| JobError::new(ErrorClass::Internal, e.to_string()))?;
            Ok(())
        });
        let mut cfg = WorkerConfig::new(id, 8).with_lease(LEASE);
        cfg.poll_every = Duration::from_millis(200);
        let sup = Supervisor::new();
        let worker = Worker::new(pool.clone(), Store::new(pool), handlers, cfg);
        worker.run(sup.shutdown_handle()).await.unwrap();
    });
}

fn spawn_worker(url: &str, db: &str, id: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_worker_child", "--nocapture", "--test-threads=1"])
        .env("SPINE_CRASH_WORKER", url)
        .env("SPINE_CRASH_DB", db)
        .env("SPINE_CRASH_ID", id)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// A URL the children can connect with: DATABASE_URL when the tests use one, else the private
/// cluster's socket directory (`postgresql:///?host=/dir&user=…&port=…`).
fn server_url(options: &PgConnectOptions) -> String {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        return url;
    }
    let dir =
        options.get_socket().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| options.get_host().into());
    let host: String = dir
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "postgresql:///postgres?host={host}&user={}&port={}&sslmode=disable",
        options.get_username(),
        options.get_port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_workers_lose_nothing() {
    let db = spine_testkit::test_db().await;
    let pool = &db.pool;
    sqlx::query(
        "CREATE TABLE public_test_marks (job_id uuid, attempt int, dups int NOT NULL DEFAULT 0,
                                         PRIMARY KEY (job_id, attempt))",
    )
    .execute(pool)
    .await
    .unwrap();
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'crash', 'Crash')")
        .bind(t.as_uuid())
        .execute(pool)
        .await
        .unwrap();
    let store = Store::new(pool.clone());
    for chunk in 0..JOBS / 1000 {
        let jobs: Vec<NewJob> = (0..1000)
            .map(|i| {
                let mut j = NewJob::new(t, "mark", json!({ "n": chunk * 1000 + i }));
                j.max_attempts = 50;
                j
            })
            .collect();
        let mut tx = store.tenant_tx(t).await.unwrap();
        queue::enqueue_many(tx.conn(), &jobs).await.unwrap();
        tx.commit().await.unwrap();
    }

    let url = server_url(&db.options);
    let started = Instant::now();
    let mut spawned = 0;
    let mut next_id = || {
        spawned += 1;
        format!("crash-{spawned}")
    };
    let mut children = Children((0..WORKERS).map(|_| spawn_worker(&url, &db.name, &next_id())).collect());
    let mut kills = 0;
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM qiserver.jobs WHERE state = 'succeeded'")
            .fetch_one(pool)
            .await
            .unwrap();
        if done as usize == JOBS {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "only {done} of {JOBS} jobs done after {kills} kills");
        // Chaos interval (not synchronisation): kill a random worker every 150–500 ms while work remains.
        let pause = rand::thread_rng().gen_range(150..500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let victim = rand::thread_rng().gen_range(0..WORKERS);
        let c = &mut children.0[victim];
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        kills += 1;
        children.0[victim] = spawn_worker(&url, &db.name, &next_id());
    }
    let took = started.elapsed();
    drop(children);

    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM qiserver.jobs GROUP BY state").fetch_all(pool).await.unwrap();
    assert_eq!(states, vec![("succeeded".to_owned(), JOBS as i64)], "every job succeeded, none lost");
    let one = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap() };
    assert_eq!(one("SELECT count(*) FROM public_test_marks WHERE dups > 0").await, 0, "no attempt ran twice");
    assert_eq!(
        one("SELECT count(*) FROM qiserver.jobs j WHERE NOT EXISTS (
                 SELECT 1 FROM public_test_marks m WHERE m.job_id = j.id AND m.attempt = j.attempts)")
        .await,
        0,
        "the succeeding attempt of every job left its mark"
    );
    assert_eq!(
        one("SELECT count(*) FROM qiserver.jobs j WHERE (SELECT count(*) FROM qiserver.job_attempt_history a
                 WHERE a.job_id = j.id AND a.outcome = 'succeeded' AND a.attempt = j.attempts) <> 1")
        .await,
        0,
        "one succeeded attempt row per job, for its last attempt"
    );
    assert_eq!(
        one("SELECT count(*) FROM public_test_marks m JOIN qiserver.jobs j ON j.id = m.job_id
             WHERE m.attempt <> j.attempts AND NOT EXISTS (
                 SELECT 1 FROM qiserver.job_attempts a WHERE a.job_id = m.job_id AND a.attempt = m.attempt
                 AND a.outcome = 'lease_expired' AND m.attempt < j.attempts)")
        .await,
        0,
        "every extra mark is an attempt the history shows as lease_expired"
    );
    let extra = one("SELECT count(*) - (SELECT count(*) FROM qiserver.jobs) FROM public_test_marks").await;
    let lapsed = one("SELECT count(*) FROM qiserver.job_attempts WHERE outcome = 'lease_expired'").await;
    eprintln!(
        "{JOBS} jobs, {WORKERS} worker processes, {kills} kill -9s in {took:?}: \
         {extra} extra marks, {lapsed} lapsed attempts"
    );
    assert!(kills >= 3, "the run ended before the test killed enough workers ({kills})");
    assert!(lapsed > 0, "no kill caught a worker holding jobs");
}
