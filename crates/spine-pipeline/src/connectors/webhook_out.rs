//! `webhook_out`: POSTs events as JSON to the configured URL, signed the Standard Webhooks way
//! (<https://www.standardwebhooks.com/>), which Svix and others verify:
//!
//! - `webhook-id`: the event's id (`msg_` + a UUID v7, hex), the same on every retry of the event;
//! - `webhook-timestamp`: Unix seconds when the delivery was signed;
//! - `webhook-signature`: `v1,` + base64 (standard, padded) of
//!   HMAC-SHA256(key, `{webhook-id}.{webhook-timestamp}.{body}`).
//!
//! The key is the UTF-8 bytes of the connection's signing secret as given (receivers using a
//! Standard Webhooks library pass it as `whsec_` + base64 of those bytes). The test call and the
//! health check both send a `ping` event: `{"type":"ping","timestamp":…,"data":{"check":…}}`;
//! any 2xx answer counts, whatever its body.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use sha2::Sha256;
use spine_core::connector::ConnectorType;
use zeroize::Zeroizing;

use super::diagnosis::{Body, CheckKind, Diagnosis, Exchange, Outcome, media_type, shown_url, transport_outcome};
use super::{ResolvedConfig, client};

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

pub struct WebhookOut {
    url: Url,
    headers: HeaderMap,
    key: Zeroizing<Vec<u8>>,
    timeout: Duration,
}

impl WebhookOut {
    pub(super) fn build(config: &ResolvedConfig, timeout: Duration) -> Result<Self, String> {
        let v = config.expose();
        let raw = v["url"].as_str().ok_or("url is missing")?;
        let url = Url::parse(raw).map_err(|e| format!("url is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http or https", url.scheme()));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in v["headers"].as_object().into_iter().flatten() {
            let n =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name {name:?} is not valid"))?;
            let val = HeaderValue::from_str(value.as_str().unwrap_or(""))
                .map_err(|_| format!("the value of header {name:?} is not valid"))?;
            headers.insert(n, val);
        }
        let key = config.str("auth.signing_secret").ok_or("auth.signing_secret is missing")?;
        Ok(Self { url, headers, key: Zeroizing::new(key.as_bytes().to_vec()), timeout })
    }

    /// Sends one signed event (`body` is the exact bytes signed and sent).
    pub async fn deliver(&self, check: CheckKind, id: &str, body: Vec<u8>) -> Diagnosis {
        let request = format!("POST {}", shown_url(&self.url));
        let timestamp = chrono::Utc::now().timestamp();
        let mut headers = self.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let signed = [
            (HEADER_ID, id.to_owned()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_SIGNATURE, signature(&self.key, id, timestamp, &body)),
        ];
        for (name, value) in signed {
            match HeaderValue::from_str(&value) {
                Ok(v) => headers.insert(HeaderName::from_static(name), v),
                Err(_) => {
                    let msg = format!("{request}: event id is not a valid header value");
                    return Diagnosis::refused(
                        ConnectorType::WebhookOut,
                        check,
                        spine_core::jobs::ErrorClass::Invalid,
                        msg,
                    );
                }
            };
        }
        let started = Instant::now();
        let sent = client().post(self.url.clone()).headers(headers).body(body).timeout(self.timeout).send().await;
        let (outcome, content_type, body_bytes) = match sent {
            Err(e) => (transport_outcome(&e), None, None),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after =
                    resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let ct = media_type(resp.headers().get(CONTENT_TYPE));
                // The body is not needed; its size is (and reading it ends the exchange cleanly).
                match resp.bytes().await {
                    Ok(b) => (Outcome::Answer { status, retry_after, body: Body::NotJson }, ct, Some(b.len() as u64)),
                    Err(e) => (transport_outcome(&e), ct, None),
                }
            }
        };
        Exchange { t: ConnectorType::WebhookOut, check, request: &request, started, outcome, content_type, body_bytes }
            .diagnose()
    }

    /// A signed `ping` event: the test call and the health check.
    pub(super) async fn ping(&self, check: CheckKind) -> Diagnosis {
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let body = json!({
            "type": "ping",
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": {"check": check.as_str()},
        });
        self.deliver(check, &id, serde_json::to_vec(&body).expect("JSON serialises")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_id_timestamp_body() {
        // Computed independently: printf 'msg_1.1700000000.{"a":1}' \
        //   | openssl dgst -sha256 -hmac key-0123456789abcdef -binary | base64
        let s = signature(b"key-0123456789abcdef", "msg_1", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(s, "v1,IcKSPUxDNTBdwEUbYyOwoL7JMZMYJWuArhGyCenrQ+Y=");
        assert_ne!(s, signature(b"key-0123456789abcdef", "msg_1", 1_700_000_001, br#"{"a":1}"#));
    }
}
