//! `spine.http.check`: GET a URL and expect an answer. What goes wrong is classified by
//! `spine_core::http_class`: refused connection → `network`, no answer in time → `timeout`,
//! 5xx → `server`, 429 → `rate_limited`, 401/403 → `auth`, other 4xx or a bad payload → `invalid`.

use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spine_core::http_class::classify_status;
use spine_core::jobs::{ErrorClass, JobError};

use crate::worker::JobContext;

pub const HTTP_CHECK: &str = "spine.http.check";

/// The payload, versioned by its `type` tag: old rows keep decoding after an upgrade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum HttpCheck {
    #[serde(rename = "http_check.v1")]
    V1 {
        url: String,
        /// Fail (`invalid`) unless the answer has exactly this status (default: any 1xx–3xx).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
        /// Give up waiting after this many seconds (default 10, at most 300).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("spine/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// A URL for messages: without user info, query or fragment (they may hold credentials).
fn shown(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

pub(super) async fn run(ctx: JobContext) -> Result<(), JobError> {
    check(&ctx.payload_as::<HttpCheck>()?).await
}

/// Runs one check: `Ok` when the URL answered as expected, otherwise the classified failure.
pub async fn check(payload: &HttpCheck) -> Result<(), JobError> {
    let HttpCheck::V1 { url, expect_status, timeout_secs } = payload;
    let (expect_status, timeout_secs) = (*expect_status, *timeout_secs);
    let url = reqwest::Url::parse(url).map_err(|e| JobError::new(ErrorClass::Invalid, format!("url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(JobError::new(ErrorClass::Invalid, format!("url: scheme {:?} is not http or https", url.scheme())));
    }
    let timeout = Duration::from_secs(timeout_secs.unwrap_or(10).clamp(1, 300));
    let target = shown(&url);
    let resp = client().get(url).timeout(timeout).send().await.map_err(|e| {
        let class = if e.is_timeout() { ErrorClass::Timeout } else { ErrorClass::Network };
        let what = if e.is_timeout() {
            format!("no answer within {} s", timeout.as_secs())
        } else if e.is_connect() {
            "connection failed".to_owned()
        } else {
            e.without_url().to_string()
        };
        JobError::new(class, format!("GET {target}: {what}"))
    })?;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok());
    if let Some(mut err) = classify_status(status, retry_after, chrono::Utc::now()) {
        err.message = format!("GET {target}: {}", err.message);
        return Err(err);
    }
    match expect_status {
        Some(want) if want != status => {
            Err(JobError::new(ErrorClass::Invalid, format!("GET {target}: HTTP {status}, expected {want}")))
        }
        _ => Ok(()),
    }
}
