//! Job engine types: states, error classes, retry policy. What happens after a failure is decided
//! here, purely, from the error class (seed 004) and the attempt count.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A job kind is a lowercase dotted name: a letter, then up to 62 of `a-z`, `0-9`, `_`, `.`
/// (e.g. `registration.stage_file`). The database keeps only a length check (decision 0013).
pub fn is_valid_kind(kind: &str) -> bool {
    let b = kind.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'.')
}

/// Where a job stands. `Failed` means "failed, will retry at run_at".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Quarantined,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Quarantined,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Quarantined => "quarantined",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Nothing happens to a job in a terminal state unless a person requeues it.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Quarantined | JobState::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            format!("unknown job state {s:?}; states: queued, running, succeeded, failed, quarantined, cancelled")
        })
    }
}

/// Why an attempt failed; decides retrying (seed 004's error handling by class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Credentials refused: no retry (the connection concerned is disabled with the reason).
    Auth,
    /// The remote asked us to slow down: retry after its Retry-After (clamped) or the limiter window.
    RateLimited,
    /// The remote failed (5xx): exponential backoff with jitter.
    Server,
    /// Connection refused, reset, DNS: retry with delay.
    Network,
    /// The remote or the handler took too long: retry with delay.
    Timeout,
    /// Bad response, parse error, 4xx: no retry; quarantined for a developer.
    Invalid,
    /// A bug or unexpected error in our handler (including panics): retry with backoff.
    Internal,
    /// The worker holding the job stopped heartbeating (crash, kill -9): retried at once.
    LeaseExpired,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::Auth,
        ErrorClass::RateLimited,
        ErrorClass::Server,
        ErrorClass::Network,
        ErrorClass::Timeout,
        ErrorClass::Invalid,
        ErrorClass::Internal,
        ErrorClass::LeaseExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Auth => "auth",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Server => "server",
            ErrorClass::Network => "network",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Invalid => "invalid",
            ErrorClass::Internal => "internal",
            ErrorClass::LeaseExpired => "lease_expired",
        }
    }

    /// Whether a failure of this class may be retried at all.
    pub fn retryable(self) -> bool {
        !matches!(self, ErrorClass::Auth | ErrorClass::Invalid)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| format!("unknown error class {s:?}"))
    }
}

/// A failed attempt as the handler reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobError {
    pub class: ErrorClass,
    pub message: String,
    /// For `RateLimited`: what the remote's Retry-After said (or, when deferred, how long to wait).
    pub retry_after: Option<Duration>,
    /// Not a failure: put the job off for `retry_after` without using up an attempt (a local rate
    /// limit said wait). Recorded as a `deferred` attempt.
    pub deferred: bool,
}

impl JobError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), retry_after: None, deferred: false }
    }
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self { class: ErrorClass::RateLimited, message: message.into(), retry_after, deferred: false }
    }
    /// Put the job off for `after` (at least a second, at most a day): it goes back to the queue
    /// and the attempt does not count against `max_attempts`.
    pub fn deferred(message: impl Into<String>, after: Duration) -> Self {
        let after = after.clamp(Duration::from_secs(1), Duration::from_secs(86_400));
        Self { class: ErrorClass::RateLimited, message: message.into(), retry_after: Some(after), deferred: true }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Retry after this delay.
    RetryIn(Duration),
    /// No retry: quarantine with the error for a person to look at.
    Quarantine,
}

/// Per-kind retry settings. The default schedule is Svix's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h…
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay before retry n (1-based); the last entry repeats.
    pub schedule: Vec<Duration>,
    /// ± this fraction of jitter (0.2 = ±20%).
    pub jitter: f64,
    /// Bounds applied to a remote's Retry-After.
    pub retry_after_min: Duration,
    pub retry_after_max: Duration,
    /// Used for `RateLimited` when the remote gave no Retry-After (the limiter window).
    pub rate_limit_window: Duration,
    /// Delay for `LeaseExpired` (the worker died; the job itself may be fine).
    pub lease_retry: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            schedule: vec![s(5), s(300), s(1800), s(7200), s(18_000), s(36_000)],
            jitter: 0.2,
            retry_after_min: s(1),
            retry_after_max: s(3600),
            rate_limit_window: s(60),
            lease_retry: Duration::ZERO,
        }
    }
}

impl RetryPolicy {
    /// Decides the next step after failed attempt number `attempt` (1-based) of `max_attempts`.
    /// `unit` is a uniform random number in [0, 1) for the jitter (passed in: this crate does no I/O).
    pub fn after_failure(&self, err: &JobError, attempt: i32, max_attempts: i32, unit: f64) -> AfterFailure {
        if !err.class.retryable() || attempt >= max_attempts {
            return AfterFailure::Quarantine;
        }
        let base = match err.class {
            ErrorClass::RateLimited => {
                return AfterFailure::RetryIn(
                    err.retry_after
                        .map(|d| d.clamp(self.retry_after_min, self.retry_after_max))
                        .unwrap_or(self.rate_limit_window),
                );
            }
            ErrorClass::LeaseExpired => return AfterFailure::RetryIn(self.lease_retry),
            _ => {
                let i = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
                let scheduled =
                    self.schedule.get(i).or(self.schedule.last()).copied().unwrap_or(Duration::from_secs(5));
                // A server that said when to come back (503 + Retry-After) is not asked sooner.
                match err.retry_after {
                    Some(d) => scheduled.max(d.clamp(self.retry_after_min, self.retry_after_max)),
                    None => scheduled,
                }
            }
        };
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        AfterFailure::RetryIn(base.mul_f64(factor.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_retry_after_is_honoured() {
        let p = RetryPolicy { jitter: 0.0, ..RetryPolicy::default() };
        let mut e = JobError::new(ErrorClass::Server, "HTTP 503");
        assert_eq!(p.after_failure(&e, 1, 10, 0.5), AfterFailure::RetryIn(Duration::from_secs(5)));
        e.retry_after = Some(Duration::from_secs(120));
        assert_eq!(p.after_failure(&e, 1, 10, 0.5), AfterFailure::RetryIn(Duration::from_secs(120)));
        e.retry_after = Some(Duration::from_secs(1));
        assert_eq!(p.after_failure(&e, 2, 10, 0.5), AfterFailure::RetryIn(Duration::from_secs(300)));
    }

    #[test]
    fn kinds() {
        for ok in ["a", "spine.noop", "registration.stage_file", "x9_.y", &"a".repeat(63)] {
            assert!(super::is_valid_kind(ok), "{ok}");
        }
        for bad in ["", "A", "9a", ".a", "_a", "a-b", "a b", "é", "a\0", &"a".repeat(64)] {
            assert!(!super::is_valid_kind(bad), "{bad:?}");
        }
    }

    use super::*;

    #[test]
    fn classes_decide() {
        let p = RetryPolicy::default();
        let e = |c| JobError::new(c, "x");
        assert_eq!(p.after_failure(&e(ErrorClass::Auth), 1, 10, 0.5), AfterFailure::Quarantine);
        assert_eq!(p.after_failure(&e(ErrorClass::Invalid), 1, 10, 0.5), AfterFailure::Quarantine);
        assert_eq!(p.after_failure(&e(ErrorClass::Server), 1, 10, 0.5), AfterFailure::RetryIn(Duration::from_secs(5)));
        assert_eq!(
            p.after_failure(&e(ErrorClass::Server), 2, 10, 0.5),
            AfterFailure::RetryIn(Duration::from_secs(300))
        );
        assert_eq!(
            p.after_failure(&e(ErrorClass::Network), 9, 10, 0.5),
            AfterFailure::RetryIn(Duration::from_secs(36_000)),
            "the last step repeats"
        );
        assert_eq!(p.after_failure(&e(ErrorClass::Server), 10, 10, 0.5), AfterFailure::Quarantine);
        assert_eq!(p.after_failure(&e(ErrorClass::LeaseExpired), 3, 10, 0.9), AfterFailure::RetryIn(Duration::ZERO));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        let e = JobError::new(ErrorClass::Timeout, "slow");
        for (unit, expect) in [(0.0, 4.0), (1.0, 6.0), (0.5, 5.0)] {
            let AfterFailure::RetryIn(d) = p.after_failure(&e, 1, 5, unit) else { panic!() };
            assert!((d.as_secs_f64() - expect).abs() < 1e-9, "{unit}: {d:?}");
        }
    }

    #[test]
    fn retry_after_is_clamped() {
        let p = RetryPolicy::default();
        let r = |d| p.after_failure(&JobError::rate_limited("429", d), 1, 5, 0.5);
        assert_eq!(r(Some(Duration::from_millis(10))), AfterFailure::RetryIn(Duration::from_secs(1)));
        assert_eq!(r(Some(Duration::from_secs(86_400))), AfterFailure::RetryIn(Duration::from_secs(3600)));
        assert_eq!(r(Some(Duration::from_secs(30))), AfterFailure::RetryIn(Duration::from_secs(30)));
        assert_eq!(r(None), AfterFailure::RetryIn(Duration::from_secs(60)));
    }

    #[test]
    fn names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        for c in ErrorClass::ALL {
            assert_eq!(c.as_str().parse::<ErrorClass>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
        }
    }
}
