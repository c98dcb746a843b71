//! What a check found, redacted: status, class, latency, a short message. Never a secret, never a
//! response body (only its content type and size), never a URL's user info, query or fragment.

use std::time::{Duration, Instant};

use serde::Serialize;
use spine_core::connector::ConnectorType;
use spine_core::http_class::classify_status;
use spine_core::jobs::{ErrorClass, JobError};

/// Which check produced a diagnosis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// The type's test call: validates credentials (run before a rotation and on demand).
    Test,
    /// The type's non-destructive health check.
    Health,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Test => "test",
            CheckKind::Health => "health",
        }
    }
}

/// The redacted outcome of one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnosis {
    pub ok: bool,
    pub connector_type: &'static str,
    pub check: CheckKind,
    /// `None` exactly when `ok`.
    pub error_class: Option<ErrorClass>,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// What the remote's Retry-After said (429, 503).
    pub retry_after_secs: Option<u64>,
    /// Media type of the answer (without parameters), when there was one.
    pub content_type: Option<String>,
    /// Bytes of the answer read (at most the runtime's read limit).
    pub body_bytes: Option<u64>,
    /// e.g. `GET http://127.0.0.1:8080/v1/people: HTTP 401 (credentials refused)`.
    pub message: String,
}

impl Diagnosis {
    /// The failure as a job error (for handlers that use a connection), `None` when ok.
    pub fn job_error(&self) -> Option<JobError> {
        let class = self.error_class?;
        Some(JobError { class, message: self.message.clone(), retry_after: self.retry_after(), deferred: false })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_secs.map(Duration::from_secs)
    }

    /// A failure before any request was sent (a config the runtime cannot use).
    pub fn refused(t: ConnectorType, check: CheckKind, class: ErrorClass, message: impl Into<String>) -> Self {
        Diagnosis {
            ok: false,
            connector_type: t.name(),
            check,
            error_class: Some(class),
            http_status: None,
            latency_ms: 0,
            retry_after_secs: None,
            content_type: None,
            body_bytes: None,
            message: clip(message.into()),
        }
    }
}

/// What a request came to, before it is classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No complete answer within the call's timeout.
    Timeout,
    /// No connection (refused, unreachable, DNS, TLS).
    ConnectFailed { refused: bool },
    /// The connection broke during the exchange.
    Broken,
    /// An answer: its status, Retry-After, and what its body was.
    Answer { status: u16, retry_after: Option<String>, body: Body },
}

/// What the answer's body was, as far as the runtime read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Json,
    NotJson,
    /// Larger than the read limit; judged by its content type.
    TooLarge {
        json_type: bool,
    },
}

/// The error class of an outcome for a type, through `spine_core::http_class` for statuses:
/// 401/403 → auth, 429 → rate_limited (Retry-After kept), 5xx → server, connect failures and
/// broken exchanges → network, no answer in time → timeout, any other non-2xx (including
/// redirects, which connector calls never follow) → invalid; and per type: http_json needs a JSON
/// body, webhook_out takes any body. `None` for a success.
pub fn classify(t: ConnectorType, outcome: &Outcome) -> Option<JobError> {
    let (status, retry_after, body) = match outcome {
        Outcome::Timeout => return Some(JobError::new(ErrorClass::Timeout, "no answer in time")),
        Outcome::ConnectFailed { refused: true } => {
            return Some(JobError::new(ErrorClass::Network, "connection refused"));
        }
        Outcome::ConnectFailed { refused: false } => {
            return Some(JobError::new(ErrorClass::Network, "connection failed"));
        }
        Outcome::Broken => return Some(JobError::new(ErrorClass::Network, "connection broken during the exchange")),
        Outcome::Answer { status, retry_after, body } => (*status, retry_after.as_deref(), *body),
    };
    if let Some(e) = classify_status(status, retry_after, chrono::Utc::now()) {
        return Some(e);
    }
    if !(200..300).contains(&status) {
        return Some(JobError::new(
            ErrorClass::Invalid,
            format!("HTTP {status} (not a 2xx; redirects are not followed: configure the final URL)"),
        ));
    }
    match t {
        ConnectorType::HttpJson => match body {
            Body::Json | Body::TooLarge { json_type: true } => None,
            Body::NotJson | Body::TooLarge { json_type: false } => {
                Some(JobError::new(ErrorClass::Invalid, format!("HTTP {status} but the answer is not JSON")))
            }
        },
        ConnectorType::WebhookOut => None,
    }
}

/// The outcome of a transport error.
pub(super) fn transport_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut refused = false;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Outcome::Timeout;
            }
        }
        source = s.source();
    }
    if e.is_connect() || refused { Outcome::ConnectFailed { refused } } else { Outcome::Broken }
}

/// Everything a finished request tells the diagnosis.
pub(super) struct Exchange<'a> {
    pub t: ConnectorType,
    pub check: CheckKind,
    /// `METHOD shown-url`.
    pub request: &'a str,
    pub started: Instant,
    pub outcome: Outcome,
    pub content_type: Option<String>,
    pub body_bytes: Option<u64>,
}

impl Exchange<'_> {
    pub fn diagnose(self) -> Diagnosis {
        let latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let http_status = match &self.outcome {
            Outcome::Answer { status, .. } => Some(*status),
            _ => None,
        };
        let err = classify(self.t, &self.outcome);
        let mut message = match (&err, http_status) {
            (Some(e), _) => format!("{}: {}", self.request, e.message),
            (None, Some(s)) => format!("{}: HTTP {s}", self.request),
            (None, None) => self.request.to_owned(),
        };
        if let Some(ct) = &self.content_type {
            message.push_str(&format!(", {ct}"));
        }
        if let Some(n) = self.body_bytes {
            message.push_str(&format!(", {n} bytes"));
        }
        message.push_str(&format!(", {latency_ms} ms"));
        Diagnosis {
            ok: err.is_none(),
            connector_type: self.t.name(),
            check: self.check,
            error_class: err.as_ref().map(|e| e.class),
            http_status,
            latency_ms,
            retry_after_secs: err.as_ref().and_then(|e| e.retry_after).map(|d| d.as_secs()),
            content_type: self.content_type,
            body_bytes: self.body_bytes,
            message: clip(message),
        }
    }
}

/// A URL for messages: scheme, host, port and path only (user info, query and fragment may hold
/// credentials or personal data).
pub fn shown_url(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        url.path()
    )
}

/// The media type of a Content-Type header, without parameters, lowercase, at most 100 chars.
pub(super) fn media_type(v: Option<&reqwest::header::HeaderValue>) -> Option<String> {
    let s = v?.to_str().ok()?;
    let essence = s.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then(|| essence.chars().take(100).collect())
}

fn clip(mut s: String) -> String {
    if s.chars().count() > 500 {
        s = s.chars().take(497).collect::<String>() + "...";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Body) -> Outcome {
        Outcome::Answer { status, retry_after: None, body }
    }

    #[test]
    fn classes_per_type() {
        let class = |t, o: &Outcome| classify(t, o).map(|e| e.class);
        let (h, w) = (ConnectorType::HttpJson, ConnectorType::WebhookOut);
        assert_eq!(class(h, &answer(200, Body::Json)), None);
        assert_eq!(class(h, &answer(200, Body::NotJson)), Some(ErrorClass::Invalid));
        assert_eq!(class(w, &answer(204, Body::NotJson)), None);
        assert_eq!(class(h, &answer(200, Body::TooLarge { json_type: true })), None);
        assert_eq!(class(h, &answer(302, Body::Json)), Some(ErrorClass::Invalid));
        assert_eq!(class(w, &answer(401, Body::Json)), Some(ErrorClass::Auth));
        assert_eq!(class(h, &answer(403, Body::Json)), Some(ErrorClass::Auth));
        assert_eq!(class(h, &answer(404, Body::Json)), Some(ErrorClass::Invalid));
        assert_eq!(class(h, &answer(502, Body::Json)), Some(ErrorClass::Server));
        assert_eq!(class(h, &Outcome::Timeout), Some(ErrorClass::Timeout));
        assert_eq!(class(h, &Outcome::ConnectFailed { refused: true }), Some(ErrorClass::Network));
        assert_eq!(class(w, &Outcome::Broken), Some(ErrorClass::Network));
        let limited = Outcome::Answer { status: 429, retry_after: Some("7".into()), body: Body::Json };
        let e = classify(h, &limited).unwrap();
        assert_eq!((e.class, e.retry_after), (ErrorClass::RateLimited, Some(Duration::from_secs(7))));
    }

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        let u = reqwest::Url::parse("https://user:pw@api.example.org:8443/v1/people?api_key=k#f").unwrap();
        assert_eq!(shown_url(&u), "https://api.example.org:8443/v1/people");
    }
}
