//! The worker side around the results (`finish.rs`): heartbeat and reaping lapsed leases.

use std::time::Duration;

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
