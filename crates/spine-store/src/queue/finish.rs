//! Recording attempt results, in batches: one transaction per batch, a lean statement for the
//! successes and a general one for everything else.

use chrono::{DateTime, Utc};
use spine_core::jobs::{ErrorClass, JobState};
use sqlx::PgPool;
use uuid::Uuid;

use super::run::update_parents;
use crate::StoreError;

/// The guard both finish statements apply (`$1` the worker, `$2` the batch's ids, `d` the
/// unnested batch): only a result for the attempt the worker still holds is applied.
/// lease_owner stays set after an attempt (it names the last worker); it is compared through
/// coalesce so that no plan walks the worker's whole history in an index on it instead of looking
/// the batch up by primary key. No index on qiserver.jobs names a column either statement sets
/// for a success, so a success is a HOT update (decision 0028).
macro_rules! held_by_worker {
    () => {
        "WHERE j.id = ANY($2) AND j.id = d.id AND coalesce(j.lease_owner, '') = $1 AND j.state = 'running'
           AND j.attempts = d.attempt"
    };
}

/// The UPDATE that records a held attempt's success from inside the handler's own transaction
/// (see [`Lease`]): `$from` is an optional `FROM` clause (`""` for none), the other three are the
/// SQL expressions of the job id, the worker and the attempt (placeholders or columns of
/// `$from`). The same guard as [`finish`]'s, the same columns as its success (a HOT update);
/// `started_at` keeps the claim's time. A job with a parent or a connection is left alone (its
/// success also updates those: [`finish`] does it). Usable as a statement or a data-modifying CTE.
#[macro_export]
macro_rules! succeed_held_job_sql {
    ($from:literal, $id:literal, $worker:literal, $attempt:literal) => {
        concat!(
            "UPDATE qiserver.jobs j SET state = 'succeeded', lease_expires_at = NULL, updated_at = now(), \
                 finished_at = now(), last_error_class = NULL, last_error_message = NULL ",
            $from,
            " WHERE j.id = ",
            $id,
            " AND coalesce(j.lease_owner, '') = ",
            $worker,
            " AND j.state = 'running' \
               AND j.attempts = ",
            $attempt,
            " AND j.parent_job_id IS NULL AND j.connection_id IS NULL"
        )
    };
}

/// A running attempt, as its handler sees it: enough to record the job's success in the same
/// transaction as the handler's own writes (`succeed_held_job_sql!`), so that they commit
/// together and the worker writes no separate result. Only for jobs without a parent or a
/// connection (their successes also update those, which [`finish`] does). The update applies only
/// while the attempt still holds its lease; when it does not, the handler's writes still commit
/// (handlers are idempotent) and whoever holds the job now records its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub job_id: Uuid,
    pub worker: String,
    pub attempt: i32,
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
    let (ok, other): (Vec<&Finished>, Vec<&Finished>) = batch.iter().partition(|f| f.outcome == Finish::Succeeded);
    // Each statement joins the batch with the jobs it names; a nested loop over the unnested
    // batch is quadratic in the batch size, so it is ruled out for this transaction. Custom
    // plans (PostgreSQL's choice for array parameters) were re-planned on every call, 0.1 ms
    // each, more than a small batch's execution; the generic plans (the batch's ids by primary
    // key, hashed against the unnested batch) suit every batch size. Both set in BEGIN's round trip.
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL enable_nestloop = off; SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    let mut done = succeeded(&mut tx, worker, &ok).await?;
    done.extend(ended_otherwise(&mut tx, worker, &other).await?);
    update_parents(&mut tx, done.iter().map(|a| (a.parent_job_id, a.state.as_str()))).await?;
    super::connections::record_outcomes(&mut tx, &done).await?;
    tx.commit().await?;
    Ok(done.into_iter().map(|a| a.id).collect())
}

/// Successes, the common case, in a statement of their own: four arrays instead of nine, no
/// per-row CASE, nothing for `job_attempts` (a success is the job row itself, decision 0028).
/// It took a fifth less PostgreSQL time per job than the general statement (bench/README.md).
async fn succeeded(tx: &mut sqlx::PgConnection, worker: &str, batch: &[&Finished]) -> Result<Vec<Applied>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let id: Vec<Uuid> = batch.iter().map(|f| f.id).collect();
    let attempt: Vec<i32> = batch.iter().map(|f| f.attempt).collect();
    let started: Vec<DateTime<Utc>> = batch.iter().map(|f| f.started_at).collect();
    let ended: Vec<DateTime<Utc>> = batch.iter().map(|f| f.finished_at).collect();
    let rows: Vec<(Uuid, Option<Uuid>, Option<Uuid>, String)> = sqlx::query_as(concat!(
        "UPDATE qiserver.jobs j
         SET state = 'succeeded', lease_expires_at = NULL, updated_at = now(), started_at = d.started_at,
             finished_at = d.finished_at, last_error_class = NULL, last_error_message = NULL
         FROM unnest($2::uuid[], $3::int4[], $4::timestamptz[], $5::timestamptz[]) AS d(id, attempt, started_at, finished_at) ",
        held_by_worker!(),
        " RETURNING j.id, j.parent_job_id, j.connection_id, j.kind"
    ))
    .bind(worker)
    .bind(&id)
    .bind(&attempt)
    .bind(&started)
    .bind(&ended)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, parent_job_id, connection_id, kind)| Applied {
            id,
            parent_job_id,
            state: JobState::Succeeded.as_str().to_owned(),
            kind: connection_id.map(|_| kind),
            connection_id,
            outcome: "succeeded".to_owned(),
            error_class: None,
            error_message: None,
        })
        .collect())
}

/// Failures, quarantines, releases and deferrals (and successes, were any passed).
async fn ended_otherwise(
    tx: &mut sqlx::PgConnection,
    worker: &str,
    batch: &[&Finished],
) -> Result<Vec<Applied>, StoreError> {
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
    Ok(sqlx::query_as(concat!(
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
             FROM d ",
        held_by_worker!(),
        " RETURNING j.id, j.tenant_id, j.parent_job_id, d.attempt, d.started_at, d.finished_at, d.outcome,
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
         FROM u"
    ))
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
    .await?)
}

/// A result `finish` applied.
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

/// Read by position (`finish`'s final SELECT), as `ClaimedJob` is.
impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for Applied {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Self {
            id: row.try_get(0)?,
            parent_job_id: row.try_get(1)?,
            state: row.try_get(2)?,
            connection_id: row.try_get(3)?,
            kind: row.try_get(4)?,
            outcome: row.try_get(5)?,
            error_class: row.try_get(6)?,
            error_message: row.try_get(7)?,
        })
    }
}

/// Error messages are stored as text: NUL (which PostgreSQL text cannot hold) is replaced, and
/// the length is capped at 4,000 characters.
fn clean_message(s: &str) -> String {
    s.chars().take(4000).map(|c| if c == '\0' { '\u{fffd}' } else { c }).collect()
}
