//! Looking at jobs and acting on them: list, show, stats, retry, cancel, requeue, prune.
//! Every function takes a connection: a `TenantTx` scopes it to one tenant through RLS, a
//! `SystemTx` (service role) sees all tenants; `filter.tenant` narrows further.

use chrono::{DateTime, Utc};
use serde_json::Value;
use spine_core::jobs::JobState;
use uuid::Uuid;

use crate::StoreError;

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub ids: Option<Vec<Uuid>>,
    pub tenant: Option<Uuid>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Only jobs created before this time.
    pub created_before: Option<DateTime<Utc>>,
    pub limit: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub payload: Value,
    pub state: String,
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error_class: Option<String>,
    pub last_error_message: Option<String>,
    pub dedupe_key: Option<String>,
    pub file_id: Option<Uuid>,
    pub import_batch_id: Option<Uuid>,
    pub parent_job_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub children_total: i32,
    pub children_succeeded: i32,
    pub children_failed: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: String,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i32,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StatsRow {
    pub state: String,
    pub kind: String,
    pub jobs: i64,
    /// Seconds the oldest due job of this state and kind has waited (queued/failed only).
    pub oldest_due_secs: Option<f64>,
}

const COLS: &str = "id, tenant_id, kind, payload, state, priority, run_at, attempts, max_attempts, lease_owner,
    lease_expires_at, last_error_class, last_error_message, dedupe_key, file_id, import_batch_id, parent_job_id,
    schedule_id, connection_id, children_total, children_succeeded, children_failed, created_at, started_at, finished_at";

const WHERE: &str = "($1::uuid[] IS NULL OR id = ANY($1)) AND ($2::uuid IS NULL OR tenant_id = $2)
    AND ($3::text IS NULL OR state = $3) AND ($4::text IS NULL OR kind = $4)
    AND ($5::timestamptz IS NULL OR created_at < $5)";

macro_rules! bind_filter {
    ($q:expr, $f:expr) => {
        $q.bind($f.ids.as_deref())
            .bind($f.tenant)
            .bind($f.state.map(|s| s.as_str()))
            .bind($f.kind.as_deref())
            .bind($f.created_before)
    };
}

pub async fn list(conn: &mut sqlx::PgConnection, f: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
    let sql = format!("SELECT {COLS} FROM qiserver.jobs WHERE {WHERE} ORDER BY created_at DESC, id DESC LIMIT $6");
    Ok(bind_filter!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), f).bind(f.limit.clamp(1, 10_000)).fetch_all(conn).await?)
}

pub async fn get(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<JobRow, StoreError> {
    let sql = format!("SELECT {COLS} FROM qiserver.jobs WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?.ok_or(StoreError::NotFound)
}

pub async fn attempts(conn: &mut sqlx::PgConnection, job: Uuid) -> Result<Vec<AttemptRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT attempt, worker_id, started_at, finished_at, outcome, error_class, error_message, duration_ms
         FROM qiserver.job_attempt_history WHERE job_id = $1 ORDER BY started_at, attempt",
    )
    .bind(job)
    .fetch_all(conn)
    .await?)
}

/// Depth per state and kind, with the wait of the oldest due job.
pub async fn stats(conn: &mut sqlx::PgConnection, tenant: Option<Uuid>) -> Result<Vec<StatsRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT state, kind, count(*) AS jobs,
                extract(epoch FROM now() - min(run_at) FILTER (WHERE state IN ('queued', 'failed') AND run_at <= now()))::float8
                    AS oldest_due_secs
         FROM qiserver.jobs WHERE $1::uuid IS NULL OR tenant_id = $1
         GROUP BY state, kind ORDER BY kind, state",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?)
}

/// Makes failed (waiting to retry) jobs matching the filter due now. Returns their ids.
pub async fn retry(conn: &mut sqlx::PgConnection, f: &JobFilter) -> Result<Vec<Uuid>, StoreError> {
    transition(conn, f, "state = 'failed'", "run_at = now()").await
}

/// Cancels queued or failed jobs matching the filter (running jobs finish their attempt).
pub async fn cancel(conn: &mut sqlx::PgConnection, f: &JobFilter) -> Result<Vec<Uuid>, StoreError> {
    let ids = transition(conn, f, "state IN ('queued', 'failed')", "state = 'cancelled', finished_at = now()").await?;
    // Cancelled children count as failed for their parents.
    let ended: Vec<(Uuid, Option<Uuid>, String)> = sqlx::query_as(
        "SELECT id, parent_job_id, state FROM qiserver.jobs WHERE id = ANY($1) AND parent_job_id IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    super::run::update_parents(conn, ended.iter().map(|(_, p, s)| (*p, s.as_str()))).await?;
    Ok(ids)
}

/// Puts quarantined jobs matching the filter back in the queue with a fresh attempt budget; their
/// attempt history is kept.
pub async fn requeue(conn: &mut sqlx::PgConnection, f: &JobFilter) -> Result<Vec<Uuid>, StoreError> {
    transition(conn, f, "state = 'quarantined'", "state = 'queued', run_at = now(), attempts = 0, finished_at = NULL")
        .await
}

async fn transition(
    conn: &mut sqlx::PgConnection,
    f: &JobFilter,
    from: &str,
    set: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let sql = format!(
        "WITH m AS (SELECT id FROM qiserver.jobs WHERE {WHERE} AND {from} ORDER BY created_at LIMIT $6 FOR UPDATE)
         UPDATE qiserver.jobs j SET {set}, updated_at = now() FROM m WHERE j.id = m.id RETURNING j.id"
    );
    let ids: Vec<Uuid> = bind_filter!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), f)
        .bind(f.limit.clamp(1, 100_000))
        .fetch_all(&mut *conn)
        .await?;
    if !ids.is_empty() {
        sqlx::query("SELECT pg_notify($1, '')").bind(super::CHANNEL).execute(&mut *conn).await?;
    }
    Ok(ids)
}

/// Deletes succeeded and cancelled jobs (and their attempts) finished before `before`, at most
/// `batch` at a time; returns how many went. Call until it returns less than `batch`.
pub async fn prune(pool: &sqlx::PgPool, before: DateTime<Utc>, batch: i64) -> Result<u64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "WITH gone AS (
             DELETE FROM qiserver.jobs WHERE id IN (
                 SELECT id FROM qiserver.jobs WHERE state IN ('succeeded', 'cancelled') AND finished_at < $1
                 AND NOT EXISTS (SELECT 1 FROM qiserver.jobs c WHERE c.parent_job_id = qiserver.jobs.id)
                 -- Version 7 ids: the primary key is in creation order (no index on finished_at,
                 -- decision 0028).
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id),
         attempts AS (DELETE FROM qiserver.job_attempts WHERE job_id IN (SELECT id FROM gone))
         SELECT count(*) FROM gone",
    )
    .bind(before)
    .bind(batch)
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}
