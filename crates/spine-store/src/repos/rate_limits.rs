//! qiconnect.connection_rate_limits: per-connection rate limits shared by every worker process
//! (decision 0024). A connection's row holds the start times of the calls admitted within the
//! sliding window (a sliding-window log), the back-off a remote asked for with 429 + Retry-After,
//! and counters. [`acquire`] is one statement (`qiconnect.rate_limit_acquire`) under the row's
//! lock, with the database's clock; the limit and the window are arguments, so a connection's own
//! lower limit needs no schema change.

use std::time::Duration;

use chrono::{DateTime, Utc};
use spine_core::ids::TenantId;
use uuid::Uuid;

use crate::{Store, StoreError, TenantTx};

/// Seed 004's window: limits are per minute.
pub const WINDOW: Duration = Duration::from_secs(60);
/// A remote's Retry-After is clamped to [`MIN_BACKOFF`, `MAX_BACKOFF`] …
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// … and is this when a 429 came without a readable one.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(60);

/// What [`acquire`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// The call may go ahead; `at` (database clock) is its entry in the window.
    Admitted { at: DateTime<Utc> },
    /// Over the limit: try again at `until`.
    Wait(Wait),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// When a call can be admitted again (database clock).
    pub until: DateTime<Utc>,
    /// `until` minus the database's time of the decision; always > 0.
    pub retry_after: Duration,
    pub reason: WaitReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// The window already holds `limit` admitted calls; `until` is when the oldest that must go
    /// leaves it.
    Window,
    /// The remote answered 429; `until` is its Retry-After (clamped), or later if the window is
    /// also full.
    RemoteBackoff,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Window => "window",
            WaitReason::RemoteBackoff => "remote_backoff",
        }
    }
}

/// A connection's rate-limit counters.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RateLimitStats {
    /// Calls admitted within the last 60 s (of those the log still holds: with a shorter window,
    /// only that window's).
    pub calls_last_minute: i64,
    /// Calls admitted since the row was created.
    pub admitted_calls: i64,
    /// Calls delayed by the limiter (window full or remote back-off).
    pub hits: i64,
    /// 429 answers recorded.
    pub remote_429s: i64,
    /// When the current remote back-off ends; `None` when none holds.
    pub blocked_until: Option<DateTime<Utc>>,
    pub last_429_at: Option<DateTime<Utc>>,
}

/// A remote's Retry-After clamped to [`MIN_BACKOFF`, `MAX_BACKOFF`]; [`DEFAULT_BACKOFF`] when absent.
pub fn clamp_backoff(retry_after: Option<Duration>) -> Duration {
    retry_after.map_or(DEFAULT_BACKOFF, |d| d.clamp(MIN_BACKOFF, MAX_BACKOFF))
}

#[derive(sqlx::FromRow)]
struct Decision {
    admitted: bool,
    reason: Option<String>,
    wait_until: Option<DateTime<Utc>>,
    checked_at: DateTime<Utc>,
}

/// A connection the tenant does not have: the foreign key (23503), or, when another tenant's row
/// exists, RLS refusing the upsert's update (42501).
fn unknown_connection(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("23503" | "42501")) => StoreError::NotFound,
        _ => StoreError::Database(e),
    }
}

/// Admits one call of `connection_id` if fewer than `limit` calls were admitted within the last
/// `window` and no remote back-off holds; otherwise counts a hit and says until when to wait.
/// `limit` `None` means no limit of the connection's own (only a remote's back-off applies, and
/// nothing is logged); `Some(0)` admits nothing. The row lock is held until `tx` ends: keep `tx`
/// short, or use [`acquire_now`]. A connection the tenant does not have is `StoreError::NotFound`.
pub async fn acquire(
    tx: &mut TenantTx,
    connection_id: Uuid,
    limit: Option<u32>,
    window: Duration,
) -> Result<Acquire, StoreError> {
    acquire_in(tx, connection_id, limit, window, false).await
}

async fn acquire_in(
    tx: &mut TenantTx,
    connection_id: Uuid,
    limit: Option<u32>,
    window: Duration,
    async_commit: bool,
) -> Result<Acquire, StoreError> {
    if window.is_zero() {
        return Err(StoreError::Invalid("rate-limit window must be positive".into()));
    }
    let limit = limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX));
    // synchronous_commit is read at commit time only; setting it here saves a round trip.
    let d: Decision = sqlx::query_as(
        "SELECT admitted, reason, wait_until, checked_at,
                CASE WHEN $4 THEN set_config('synchronous_commit', 'off', true) END AS commit_mode
         FROM qiconnect.rate_limit_acquire($1, $2, make_interval(secs => $3))",
    )
    .bind(connection_id)
    .bind(limit)
    .bind(window.as_secs_f64())
    .bind(async_commit)
    .fetch_one(tx.conn())
    .await
    .map_err(unknown_connection)?;
    if d.admitted {
        return Ok(Acquire::Admitted { at: d.checked_at });
    }
    let until = d.wait_until.ok_or_else(|| StoreError::Invalid("refused without a time".into()))?;
    let reason = match d.reason.as_deref() {
        Some("remote_backoff") => WaitReason::RemoteBackoff,
        _ => WaitReason::Window,
    };
    let retry_after = (until - d.checked_at).to_std().unwrap_or(Duration::ZERO).max(Duration::from_micros(1));
    Ok(Acquire::Wait(Wait { until, retry_after, reason }))
}

/// [`acquire`] in a transaction of its own that commits at once without waiting for the WAL flush
/// (decision 0024: a crash loses at most the last few milliseconds of admissions), so the row is
/// locked only for the statement and the commit.
pub async fn acquire_now(
    store: &Store,
    tenant: TenantId,
    connection_id: Uuid,
    limit: Option<u32>,
    window: Duration,
) -> Result<Acquire, StoreError> {
    let mut tx = store.tenant_tx(tenant).await?;
    let r = acquire_in(&mut tx, connection_id, limit, window, true).await?;
    tx.commit().await?;
    Ok(r)
}

/// Records a remote's 429: no call of the connection is admitted before now + `retry_after`
/// clamped ([`clamp_backoff`]), or before an earlier back-off's end if that is later. Returns
/// when the back-off ends (database clock).
pub async fn record_remote_429(
    tx: &mut TenantTx,
    connection_id: Uuid,
    retry_after: Option<Duration>,
) -> Result<DateTime<Utc>, StoreError> {
    let backoff = clamp_backoff(retry_after);
    sqlx::query_scalar(
        "INSERT INTO qiconnect.connection_rate_limits AS l (connection_id, tenant_id, blocked_until, remote_429s, last_429_at)
         VALUES ($1, core.current_tenant_id(), clock_timestamp() + make_interval(secs => $2), 1, clock_timestamp())
         ON CONFLICT (connection_id) DO UPDATE
            SET blocked_until = greatest(l.blocked_until, EXCLUDED.blocked_until),
                remote_429s = l.remote_429s + 1, last_429_at = EXCLUDED.last_429_at
         RETURNING blocked_until",
    )
    .bind(connection_id)
    .bind(backoff.as_secs_f64())
    .fetch_one(tx.conn())
    .await
    .map_err(unknown_connection)
}

/// The connection's counters; `None` when it has no rate-limit row yet (or belongs to another
/// tenant).
pub async fn stats(tx: &mut TenantTx, connection_id: Uuid) -> Result<Option<RateLimitStats>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM unnest(l.recent_calls) t
                 WHERE t > clock_timestamp() - interval '60 seconds') AS calls_last_minute,
                l.admitted_calls, l.hits, l.remote_429s,
                CASE WHEN l.blocked_until > clock_timestamp() THEN l.blocked_until END AS blocked_until,
                l.last_429_at
         FROM qiconnect.connection_rate_limits l WHERE l.connection_id = $1",
    )
    .bind(connection_id)
    .fetch_optional(tx.conn())
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_clamped() {
        let s = Duration::from_secs;
        assert_eq!(clamp_backoff(None), s(60));
        assert_eq!(clamp_backoff(Some(Duration::ZERO)), s(1));
        assert_eq!(clamp_backoff(Some(s(120))), s(120));
        assert_eq!(clamp_backoff(Some(s(86_400))), s(3600));
    }
}
