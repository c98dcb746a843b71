//! What an HTTP answer means for a job (seed 004's error classes), decided purely from the status
//! and the Retry-After header. Every handler that calls a remote over HTTP uses this one table.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::jobs::{ErrorClass, JobError};

/// `None` for a success (1xx–3xx); otherwise the class of failure:
/// 401/403 → `auth`; 408 → `timeout`; 429 → `rate_limited` (with Retry-After); 5xx → `server`
/// (503 also keeps its Retry-After); any other 4xx or unknown code → `invalid`.
pub fn classify_status(status: u16, retry_after: Option<&str>, now: DateTime<Utc>) -> Option<JobError> {
    let msg = |what: &str| format!("HTTP {status} ({what})");
    let class = match status {
        100..=399 => return None,
        401 | 403 => ErrorClass::Auth,
        408 => ErrorClass::Timeout,
        429 => {
            return Some(JobError::rate_limited(
                msg("rate limited"),
                retry_after.and_then(|v| parse_retry_after(v, now)),
            ));
        }
        500..=599 => {
            let mut e = JobError::new(ErrorClass::Server, msg("server error"));
            if status == 503 {
                e.retry_after = retry_after.and_then(|v| parse_retry_after(v, now));
            }
            return Some(e);
        }
        _ => ErrorClass::Invalid,
    };
    let what = match class {
        ErrorClass::Auth => "credentials refused",
        ErrorClass::Timeout => "request timeout",
        _ => "request refused",
    };
    Some(JobError::new(class, msg(what)))
}

/// Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past is zero.
pub fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn classes() {
        for ok in [200, 201, 204, 301, 304] {
            assert_eq!(classify_status(ok, None, now()), None, "{ok}");
        }
        let class = |s| classify_status(s, None, now()).unwrap().class;
        assert_eq!(class(401), ErrorClass::Auth);
        assert_eq!(class(403), ErrorClass::Auth);
        assert_eq!(class(408), ErrorClass::Timeout);
        assert_eq!(class(429), ErrorClass::RateLimited);
        assert_eq!(class(500), ErrorClass::Server);
        assert_eq!(class(503), ErrorClass::Server);
        assert_eq!(class(599), ErrorClass::Server);
        for bad in [400, 404, 409, 410, 422, 600, 999] {
            assert_eq!(class(bad), ErrorClass::Invalid, "{bad}");
        }
        assert_eq!(classify_status(503, None, now()).unwrap().message, "HTTP 503 (server error)");
    }

    #[test]
    fn retry_after() {
        let e = classify_status(429, Some(" 120 "), now()).unwrap();
        assert_eq!(e.retry_after, Some(Duration::from_secs(120)));
        let e = classify_status(429, Some("Sun, 22 Nov 2026 10:01:30 GMT"), now()).unwrap();
        assert_eq!(e.retry_after, Some(Duration::from_secs(90)));
        let e = classify_status(503, Some("Sun, 22 Nov 2026 09:00:00 GMT"), now()).unwrap();
        assert_eq!(e.retry_after, Some(Duration::ZERO), "a date in the past means now");
        assert_eq!(classify_status(429, Some("soon"), now()).unwrap().retry_after, None);
        assert_eq!(classify_status(500, Some("5"), now()).unwrap().retry_after, None, "only 503 and 429 keep it");
    }
}
