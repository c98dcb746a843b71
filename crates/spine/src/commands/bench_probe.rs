//! Where a burn-down's time goes: CPU of this process and of the PostgreSQL server (from /proc,
//! when the server runs on this machine), and the database's own counters (WAL bytes and
//! flushes, commits, HOT updates).

use serde_json::{Value, json};
use sqlx::PgPool;

/// CPU used so far, in ms: this process, and the server's postmaster and its children.
pub(crate) struct Cpu {
    client_ms: f64,
    pg_ms: Option<f64>,
}

/// (comm, ppid, utime + stime in ticks) of a /proc/<pid>/stat line.
fn parse_stat(stat: &str) -> Option<(&str, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let f: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((comm, ppid, ticks))
}

/// Clock ticks per second: 100 on Linux (what the peer driver assumes too).
const TICK_MS: f64 = 10.0;

impl Cpu {
    /// The postmaster's pid, when the server is local (the parent of this connection's backend).
    pub(crate) async fn postmaster(pool: &PgPool) -> Option<u32> {
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(pool).await.ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).ok()?;
        let (comm, ppid, _) = parse_stat(&stat)?;
        (comm == "postgres").then_some(ppid)
    }

    pub(crate) fn snapshot(postmaster: Option<u32>) -> Self {
        let client_ms = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s).map(|(_, _, t)| t as f64 * TICK_MS))
            .unwrap_or(0.0);
        let pg_ms = postmaster.map(|pm| {
            let mut ticks = 0;
            if let Ok(dir) = std::fs::read_dir("/proc") {
                for e in dir.flatten() {
                    let name = e.file_name();
                    let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
                    if let Some((_, ppid, t)) = parse_stat(&stat)
                        && (pid == pm || ppid == pm)
                    {
                        ticks += t;
                    }
                }
            }
            ticks as f64 * TICK_MS
        });
        Self { client_ms, pg_ms }
    }

    /// The CPU used since `before`, in total and per 1,000 jobs (the peer driver's fields).
    pub(crate) fn delta(&self, before: &Cpu, jobs: usize) -> Value {
        let per = |ms: f64| ((ms * 1000.0 / jobs.max(1) as f64) * 10.0).round() / 10.0;
        let c = self.client_ms - before.client_ms;
        let p = self.pg_ms.zip(before.pg_ms).map(|(a, b)| a - b);
        json!({
            "clientCpuMs": c.round(), "pgCpuMs": p.map(f64::round),
            "clientCpuMsPer1kJobs": per(c), "pgCpuMsPer1kJobs": p.map(per),
        })
    }
}

/// Server counters around a measurement. Every field is optional: a server that refuses one
/// (older version, missing rights) just leaves it out.
pub(crate) struct DbCounters {
    lsn: Option<String>,
    wal: Option<(i64, i64, i64)>,
    commits: Option<i64>,
    jobs: Option<(i64, i64)>,
}

impl DbCounters {
    pub(crate) async fn read(pool: &PgPool) -> Self {
        let lsn = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text").fetch_one(pool).await.ok();
        let wal = sqlx::query_as("SELECT wal_records, wal_write, wal_sync FROM pg_stat_wal").fetch_one(pool).await.ok();
        let commits = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(pool)
            .await
            .ok();
        let jobs = sqlx::query_as(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'qiserver.jobs'::regclass",
        )
        .fetch_one(pool)
        .await
        .ok();
        Self { lsn, wal, commits, jobs }
    }

    /// Differences since `before`, per job where that reads better.
    pub(crate) async fn delta_async(&self, before: &DbCounters, pool: &PgPool, jobs: usize) -> Value {
        let wal_bytes: Option<f64> = match (&self.lsn, &before.lsn) {
            (Some(a), Some(b)) => sqlx::query_scalar("SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::float8")
                .bind(a)
                .bind(b)
                .fetch_one(pool)
                .await
                .ok(),
            _ => None,
        };
        let n = jobs.max(1) as f64;
        let wal = self.wal.zip(before.wal).map(|(a, b)| (a.0 - b.0, a.1 - b.1, a.2 - b.2));
        let upd = self.jobs.zip(before.jobs).map(|(a, b)| (a.0 - b.0, a.1 - b.1));
        json!({
            "walBytesPerJob": wal_bytes.map(|w| (w / n).round()),
            "walRecordsPerJob": wal.map(|w| ((w.0 as f64 / n) * 10.0).round() / 10.0),
            "walWrites": wal.map(|w| w.1),
            "walSyncs": wal.map(|w| w.2),
            "commits": self.commits.zip(before.commits).map(|(a, b)| a - b),
            "jobUpdates": upd.map(|u| u.0),
            "jobHotUpdates": upd.map(|u| u.1),
        })
    }
}
