//! The worker side after the claim: heartbeat, finish (in batches) and reap lapsed leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use spine_core::jobs::{ErrorClass, JobState};
use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;

/// Renews the lease of `worker` itself (decision 0028; also when it holds nothing, so a live
/// worker's lease never lapses) and of the jobs it holds among `ids`; returns the ids it still
/// holds. The worker's row is locked first, as the reaper does, so the two cannot deadlock.
pub async fn heartbeat(pool: &PgPool, worker: &str, ids: &[Uuid], lease: Duration) -> Result<Vec<Uuid>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(renew_worker!("VALUES ($1, now() + make_interval(secs => $2))"))
        .bind(worker)
        .bind(lease.as_secs_f64())
        .execute(&mut *tx)
        .await?;
    let kept = if ids.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar(
            "UPDATE qiserver.jobs SET lease_expires_at = now() + make_interval(secs => $3)
             WHERE id = ANY($2) AND coalesce(lease_owner, '') = $1 AND state = 'running' RETURNING id",
        )
        .bind(worker)
        .bind(ids)
        .bind(lease.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?
    };
    tx.commit().await?;
    Ok(kept)
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish {
    Succeeded,
    /// Failed; retry at `retry_at`.
    Failed {
        class: ErrorClass,
        message: String,
        retry_at: DateTime<Utc>,
    },
    /// Failed for good (class not retryable, or attempts used up).
    Quarantined {
        class: ErrorClass,
        message: String,
    },
    /// Handed back unfinished at shutdown: queued again, the attempt not counted.
    Released,
    /// Put off until `run_at` (a rate limit said wait): queued again, the attempt not counted,
    /// recorded as `deferred` with the reason.
    Deferred {
        message: String,
        run_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug)]
pub struct Finished {
    pub id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Finish,
}

/// Records many attempt results in one transaction (job rows, attempt rows, parents' child
/// counts). Only results whose job `worker` still holds at that attempt are applied; returns the
/// ids applied. A result lost before this commits is simply retried after the lease lapses.
pub async fn finish(pool: &PgPool, worker: &str, batch: &[Finished]) -> Result<Vec<Uuid>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let n = batch.len();
    let (mut id, mut attempt, mut started, mut ended) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut state, mut run_at, mut class, mut message, mut outcome) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for f in batch {
        id.push(f.id);
        attempt.push(f.attempt);
        started.push(f.started_at);
        ended.push(f.finished_at);
        let (s, r, c, m, o): (JobState, Option<DateTime<Utc>>, Option<&str>, Option<&str>, &str) = match &f.outcome {
            Finish::Succeeded => (JobState::Succeeded, None, None, None, "succeeded"),
            Finish::Failed { class, message, retry_at } => {
                (JobState::Failed, Some(*retry_at), Some(class.as_str()), Some(message), "failed")
            }
            Finish::Quarantined { class, message } => {
                (JobState::Quarantined, None, Some(class.as_str()), Some(message), "quarantined")
            }
            Finish::Released => (JobState::Queued, Some(f.finished_at), None, None, "released"),
            Finish::Deferred { message, run_at } => {
                (JobState::Queued, Some(*run_at), Some(ErrorClass::RateLimited.as_str()), Some(message), "deferred")
            }
        };
        state.push(s.as_str());
        run_at.push(r);
        class.push(c);
        message.push(m.map(clean_message));
        outcome.push(o);
    }
    let mut tx = pool.begin().await?;
    // The batch joins the jobs it names; a nested loop over the unnested batch is quadratic in
    // the batch size, so it is ruled out for this transaction.
    sqlx::query("SET LOCAL enable_nestloop = off").execute(&mut *tx).await?;
    let done: Vec<Applied> = sqlx::query_as(
        "WITH d AS (
             SELECT * FROM unnest($2::uuid[], $3::int4[], $4::timestamptz[], $5::timestamptz[], $6::text[],
                                  $7::timestamptz[], $8::text[], $9::text[], $10::text[])
                  AS d(id, attempt, started_at, finished_at, state, run_at, error_class, error_message, outcome)),
         u AS (
             UPDATE qiserver.jobs j
             SET state = d.state, run_at = coalesce(d.run_at, j.run_at), lease_expires_at = NULL, updated_at = now(),
                 started_at = CASE WHEN d.outcome = 'succeeded' THEN d.started_at ELSE j.started_at END,
                 attempts = CASE WHEN d.outcome IN ('released', 'deferred') THEN j.attempts - 1 ELSE j.attempts END,
                 last_error_class = CASE WHEN d.outcome = 'released' THEN j.last_error_class ELSE d.error_class END,
                 last_error_message = CASE WHEN d.outcome = 'released' THEN j.last_error_message ELSE d.error_message END,
                 finished_at = CASE WHEN d.state IN ('succeeded', 'quarantined') THEN d.finished_at END
             FROM d
             -- No index on qiserver.jobs changes here, so a success is a HOT update (decision
             -- 0028). lease_owner stays set after an attempt (it names the last worker); it is
             -- compared through coalesce so that no plan walks the worker's whole history in
             -- jobs_lease_owner instead of looking the batch up by primary key.
             WHERE j.id = ANY($2) AND j.id = d.id AND coalesce(j.lease_owner, '') = $1 AND j.state = 'running'
               AND j.attempts = d.attempt
             RETURNING j.id, j.tenant_id, j.parent_job_id, d.attempt, d.started_at, d.finished_at, d.outcome,
                       d.error_class, d.error_message, j.state, j.connection_id, j.kind),
         a AS (
             INSERT INTO qiserver.job_attempts (tenant_id, job_id, attempt, worker_id, started_at, finished_at, outcome,
                                               error_class, error_message, duration_ms)
             SELECT tenant_id, id, attempt, $1, started_at, finished_at, outcome, error_class, error_message,
                    greatest(0, floor(extract(epoch FROM finished_at - started_at) * 1000))::int
             -- A success is the job row itself (started_at, finished_at, lease_owner, attempts):
             -- qiserver.job_attempt_history shows it as an attempt (decision 0028).
             FROM u WHERE outcome <> 'succeeded')
         SELECT id, parent_job_id, state, connection_id, CASE WHEN connection_id IS NOT NULL THEN kind END AS kind,
                outcome, error_class, error_message
         FROM u",
    )
    .bind(worker)
    .bind(&id)
    .bind(&attempt)
    .bind(&started)
    .bind(&ended)
    .bind(&state)
    .bind(&run_at)
    .bind(&class)
    .bind(&message)
    .bind(&outcome)
    .fetch_all(&mut *tx)
    .await?;
    update_parents(&mut tx, done.iter().map(|a| (a.parent_job_id, a.state.as_str()))).await?;
    super::connections::record_outcomes(&mut tx, &done).await?;
    tx.commit().await?;
    Ok(done.into_iter().map(|a| a.id).collect())
}

/// A result `finish` applied.
#[derive(sqlx::FromRow)]
pub(super) struct Applied {
    pub id: Uuid,
    pub parent_job_id: Option<Uuid>,
    pub state: String,
    pub connection_id: Option<Uuid>,
    pub kind: Option<String>,
    pub outcome: String,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
}

/// Children that ended (succeeded, or quarantined/cancelled) count towards their parent.
pub(super) async fn update_parents<'a>(
    conn: &mut sqlx::PgConnection,
    ended: impl IntoIterator<Item = (Option<Uuid>, &'a str)>,
) -> Result<(), StoreError> {
    let (mut parent, mut ok) = (Vec::new(), Vec::new());
    for (p, s) in ended {
        if let Some(p) = p
            && (s == "succeeded" || s == "quarantined" || s == "cancelled")
        {
            parent.push(p);
            ok.push(s == "succeeded");
        }
    }
    if parent.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE qiserver.jobs p SET children_succeeded = p.children_succeeded + c.ok, children_failed = p.children_failed + c.bad,
                updated_at = now()
         FROM (SELECT id, count(*) FILTER (WHERE ok) AS ok, count(*) FILTER (WHERE NOT ok) AS bad
               FROM unnest($1::uuid[], $2::bool[]) AS x(id, ok) GROUP BY id) c
         WHERE p.id = c.id",
    )
    .bind(&parent)
    .bind(&ok)
    .execute(conn)
    .await?;
    Ok(())
}

/// Jobs whose lease lapsed (the worker died or hung): queued again at once, or quarantined when
/// their attempts are used up. A job is taken back when its own lease and its worker's lease
/// (qiserver.job_workers, decision 0028) have both lapsed; a gone worker is forgotten once it
/// holds nothing. Each lapse is recorded as an attempt. Returns how many jobs were taken back.
pub async fn reap_expired(pool: &PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    // Concurrent reapers split the gone workers; a worker renewing its lease right now is
    // skipped (it is alive).
    let gone: Vec<String> = sqlx::query_scalar(
        "SELECT worker_id FROM qiserver.job_workers WHERE lease_expires_at < now() FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    if gone.is_empty() {
        return Ok(0);
    }
    // Running jobs have no index (decision 0028): this reads the table, only after a worker died.
    let reaped: Vec<(Uuid, Option<Uuid>, String)> = sqlx::query_as(
        "WITH x AS (
             SELECT id, lease_owner, started_at FROM qiserver.jobs
             WHERE state = 'running' AND lease_owner = ANY($1) AND lease_expires_at < now()
             FOR UPDATE),
         u AS (
             UPDATE qiserver.jobs j
             SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'quarantined' ELSE 'failed' END,
                 run_at = now(), lease_expires_at = NULL, last_error_class = 'lease_expired', updated_at = now(),
                 last_error_message = 'the lease of worker ' || x.lease_owner || ' lapsed (the worker stopped or hung)',
                 finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END
             FROM x WHERE j.id = x.id
             RETURNING j.id, j.tenant_id, j.parent_job_id, j.attempts, x.lease_owner, x.started_at, j.state,
                       j.last_error_message),
         a AS (
             INSERT INTO qiserver.job_attempts (tenant_id, job_id, attempt, worker_id, started_at, finished_at, outcome,
                                               error_class, error_message, duration_ms)
             SELECT tenant_id, id, attempts, lease_owner, coalesce(started_at, now()), now(),
                    CASE WHEN state = 'quarantined' THEN 'quarantined' ELSE 'lease_expired' END, 'lease_expired',
                    last_error_message,
                    greatest(0, floor(extract(epoch FROM now() - coalesce(started_at, now())) * 1000))::int
             FROM u)
         SELECT id, parent_job_id, state FROM u",
    )
    .bind(&gone)
    .fetch_all(&mut *tx)
    .await?;
    update_parents(&mut tx, reaped.iter().map(|(_, p, s)| (*p, s.as_str()))).await?;
    // The gone workers hold nothing more: a job's lease never outlasts its worker's (both are
    // renewed together, the worker's to the later time), and a claim or heartbeat renewing a
    // worker waits for its row, which this transaction holds, then registers it again.
    sqlx::query("DELETE FROM qiserver.job_workers WHERE worker_id = ANY($1)").bind(&gone).execute(&mut *tx).await?;
    if !reaped.is_empty() {
        // Wake every idle worker, not only the one that reaped.
        sqlx::query("SELECT pg_notify($1, '')").bind(super::CHANNEL).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(reaped.len() as u64)
}

/// Removes a worker that stopped cleanly (it released or finished every job it held), so the
/// reaper need not look for its jobs when its lease lapses.
pub async fn forget_worker(pool: &PgPool, worker: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM qiserver.job_workers WHERE worker_id = $1").bind(worker).execute(pool).await?;
    Ok(())
}

/// Error messages are stored as text: NUL (which PostgreSQL text cannot hold) is replaced, and
/// the length is capped at 4,000 characters.
fn clean_message(s: &str) -> String {
    s.chars().take(4000).map(|c| if c == '\0' { '\u{fffd}' } else { c }).collect()
}
