//! Per-connection rate limits for handlers that call remotes (seed 004, decision 0024). The state
//! is in PostgreSQL (`spine_store::repos::rate_limits`), so every worker process shares one
//! sliding 60-second window per connection. A call over the limit is not a failure: [`check`]
//! returns `JobError::rate_limited` with the wait as `retry_after`, which the job engine turns
//! into a rescheduled run. A remote's 429 is recorded with [`on_response_429`]: its Retry-After
//! (delta-seconds or HTTP date, clamped to 1 s..1 h, 60 s when absent) blocks the connection for
//! every worker.
//!
//! ```ignore
//! limiter.check(tenant, conn, ty.capabilities().rate_limit_per_minute).await?;
//! let resp = client.get(url).send().await?;
//! if resp.status() == 429 {
//!     return Err(limiter.on_response_429(tenant, conn, header(&resp, "retry-after")).await);
//! }
//! ```
//!
//! [`check`]: RateLimiter::check
//! [`on_response_429`]: RateLimiter::on_response_429

use std::time::Duration;

use chrono::{DateTime, Utc};
use spine_core::http_class;
use spine_core::ids::TenantId;
use spine_core::jobs::{ErrorClass, JobError};
use spine_store::repos::rate_limits::{self, Acquire, RateLimitStats, Wait, WaitReason};
use spine_store::{Store, StoreError};
use uuid::Uuid;

/// Shares a connection's limits with every other worker through the store.
#[derive(Clone)]
pub struct RateLimiter {
    store: Store,
    window: Duration,
}

impl RateLimiter {
    /// Limits per 60-second window (seed 004's per-minute limits).
    pub fn new(store: Store) -> Self {
        Self::with_window(store, rate_limits::WINDOW)
    }

    /// Another window length (tests use short ones); `limit` stays "calls per window".
    pub fn with_window(store: Store, window: Duration) -> Self {
        Self { store, window }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Takes a slot for one call, or says how long to wait. `limit` `None`: no limit of the
    /// connection's own (only a remote's back-off applies).
    pub async fn acquire(&self, tenant: TenantId, connection: Uuid, limit: Option<u32>) -> Result<Acquire, StoreError> {
        rate_limits::acquire_now(&self.store, tenant, connection, limit, self.window).await
    }

    /// `Ok` when the call may go ahead; over the limit, `JobError::rate_limited` with the wait as
    /// `retry_after` (the job is rescheduled, not failed). A store failure is `internal`.
    pub async fn check(&self, tenant: TenantId, connection: Uuid, limit: Option<u32>) -> Result<(), JobError> {
        match self.acquire(tenant, connection, limit).await {
            Ok(Acquire::Admitted { .. }) => Ok(()),
            Ok(Acquire::Wait(w)) => Err(wait_error(connection, limit, &w)),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Like [`check`](Self::check), but a wait of at most `max_inline` is slept here and the
    /// acquire retried, so short waits do not cost a reschedule.
    pub async fn check_or_wait(
        &self,
        tenant: TenantId,
        connection: Uuid,
        limit: Option<u32>,
        max_inline: Duration,
    ) -> Result<(), JobError> {
        loop {
            match self.acquire(tenant, connection, limit).await {
                Ok(Acquire::Admitted { .. }) => return Ok(()),
                Ok(Acquire::Wait(w)) if w.retry_after <= max_inline => tokio::time::sleep(w.retry_after).await,
                Ok(Acquire::Wait(w)) => return Err(wait_error(connection, limit, &w)),
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// Records a remote's 429 answer with its Retry-After header (raw), so that no worker calls
    /// the connection before the back-off ends, and returns the error for the handler to return.
    pub async fn on_response_429(&self, tenant: TenantId, connection: Uuid, retry_after: Option<&str>) -> JobError {
        let parsed = retry_after.and_then(|v| http_class::parse_retry_after(v, Utc::now()));
        self.record_rate_limited(tenant, connection, JobError::rate_limited("HTTP 429 (rate limited)", parsed)).await
    }

    /// The same for an error `spine_core::http_class::classify_status` already made (its
    /// `retry_after` is the parsed header): a `rate_limited` error is recorded as a remote
    /// back-off and returned with the clamped wait; any other error is returned unchanged.
    pub async fn record_rate_limited(&self, tenant: TenantId, connection: Uuid, err: JobError) -> JobError {
        if err.class != ErrorClass::RateLimited {
            return err;
        }
        let backoff = rate_limits::clamp_backoff(err.retry_after);
        let until = match self.record(tenant, connection, err.retry_after).await {
            Ok(until) => until,
            Err(e) => {
                tracing::warn!(%connection, error = %e, "could not record a remote 429; backing off this job only");
                return JobError::rate_limited(err.message, Some(backoff));
            }
        };
        // An earlier, longer back-off still holds: wait for that one.
        let wait = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO).max(backoff);
        JobError::rate_limited(format!("{}; connection backs off for {}", err.message, secs(wait)), Some(wait))
    }

    async fn record(
        &self,
        tenant: TenantId,
        connection: Uuid,
        retry_after: Option<Duration>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let until = rate_limits::record_remote_429(&mut tx, connection, retry_after).await?;
        tx.commit().await?;
        Ok(until)
    }

    /// The connection's counters (calls in the last minute, hits, 429s, current back-off).
    pub async fn stats(&self, tenant: TenantId, connection: Uuid) -> Result<Option<RateLimitStats>, StoreError> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let s = rate_limits::stats(&mut tx, connection).await?;
        tx.commit().await?;
        Ok(s)
    }
}

/// A Retry-After header value as the wait it asks for, clamped to 1 s..1 h; 60 s when absent or
/// unreadable. `now` reads an HTTP date.
pub fn retry_after_wait(header: Option<&str>, now: DateTime<Utc>) -> Duration {
    rate_limits::clamp_backoff(header.and_then(|v| http_class::parse_retry_after(v, now)))
}

fn wait_error(connection: Uuid, limit: Option<u32>, w: &Wait) -> JobError {
    let why = match (w.reason, limit) {
        (WaitReason::Window, Some(l)) => format!("{l} calls per window reached"),
        (WaitReason::Window, None) => "window full".to_owned(),
        (WaitReason::RemoteBackoff, _) => "the remote asked to back off (429)".to_owned(),
    };
    // Over the limit is not a failure: the job is put off until the window has room (decision 0022).
    JobError::deferred(
        format!("connection {connection} rate limited: {why}; deferred for {}", secs(w.retry_after)),
        w.retry_after,
    )
}

fn store_error(e: StoreError) -> JobError {
    JobError::new(ErrorClass::Internal, format!("rate limiter: {e}"))
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_header_is_parsed_and_clamped() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&Utc);
        let s = Duration::from_secs;
        assert_eq!(retry_after_wait(Some("120"), now), s(120));
        assert_eq!(retry_after_wait(Some("Sun, 22 Nov 2026 10:01:30 GMT"), now), s(90));
        assert_eq!(retry_after_wait(Some("Sun, 22 Nov 2026 09:00:00 GMT"), now), s(1), "past date → minimum");
        assert_eq!(retry_after_wait(Some("0"), now), s(1));
        assert_eq!(retry_after_wait(Some("999999"), now), s(3600));
        assert_eq!(retry_after_wait(Some("soon"), now), s(60));
        assert_eq!(retry_after_wait(None, now), s(60));
    }
}
