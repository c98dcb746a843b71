//! `http_json`: a JSON API over HTTP(S). Its test call and its health check are the configured
//! request (GET, or POST with `{}`) to `base_url` + `path` with the configured headers and the
//! credentials (bearer token, HTTP basic, or a named header); both require a 2xx JSON answer.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;
use spine_core::connector::ConnectorType;
use zeroize::Zeroizing;

use super::diagnosis::{Body, CheckKind, Diagnosis, Exchange, Outcome, media_type, shown_url, transport_outcome};
use super::{MAX_BODY_BYTES, ResolvedConfig, client};

pub struct HttpJson {
    method: Method,
    url: Url,
    /// Configured headers and the credential header (marked sensitive).
    headers: HeaderMap,
    timeout: Duration,
}

impl HttpJson {
    /// From a resolved config; `Err` names what is unusable (never a value).
    pub(super) fn build(config: &ResolvedConfig, timeout: Duration) -> Result<Self, String> {
        let v = config.expose();
        let base = v["base_url"].as_str().ok_or("base_url is missing")?;
        let path = v["path"].as_str().unwrap_or("");
        let joined = match (base.ends_with('/'), path.starts_with('/')) {
            (true, true) => format!("{base}{}", &path[1..]),
            _ => format!("{base}{path}"),
        };
        let url = Url::parse(&joined).map_err(|e| format!("base_url + path is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http or https", url.scheme()));
        }
        let method = match v["method"].as_str().unwrap_or("GET") {
            "GET" => Method::GET,
            "POST" => Method::POST,
            other => return Err(format!("method {other:?} is not GET or POST")),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in v["headers"].as_object().into_iter().flatten() {
            let n =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name {name:?} is not valid"))?;
            let val = HeaderValue::from_str(value.as_str().unwrap_or(""))
                .map_err(|_| format!("the value of header {name:?} is not valid"))?;
            headers.insert(n, val);
        }
        let (name, value) = credential(&v["auth"])?;
        headers.insert(name, value);
        Ok(Self { method, url, headers, timeout })
    }

    /// The configured request, judged as the test call or the health check.
    pub(super) async fn call(&self, check: CheckKind) -> Diagnosis {
        let request = format!("{} {}", self.method, shown_url(&self.url));
        let started = Instant::now();
        let mut req = client().request(self.method.clone(), self.url.clone()).headers(self.headers.clone());
        if self.method == Method::POST {
            req = req.header(CONTENT_TYPE, "application/json").body("{}");
        }
        let (outcome, content_type, body_bytes) = match exchange(req.timeout(self.timeout)).await {
            Ok(x) => x,
            Err(outcome) => (outcome, None, None),
        };
        Exchange { t: ConnectorType::HttpJson, check, request: &request, started, outcome, content_type, body_bytes }
            .diagnose()
    }
}

/// Sends the request and reads the answer up to the read limit; `Err` for a transport failure.
async fn exchange(req: reqwest::RequestBuilder) -> Result<(Outcome, Option<String>, Option<u64>), Outcome> {
    let mut resp = req.send().await.map_err(|e| transport_outcome(&e))?;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = media_type(resp.headers().get(CONTENT_TYPE));
    let mut buf: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut total: u64 = 0;
    let mut too_large = false;
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_outcome(&e))? {
        total += chunk.len() as u64;
        if total > MAX_BODY_BYTES {
            too_large = true;
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    let body = if too_large {
        Body::TooLarge { json_type: content_type.as_deref().is_some_and(|c| c.contains("json")) }
    } else if serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok() {
        Body::Json
    } else {
        Body::NotJson
    };
    Ok((Outcome::Answer { status, retry_after, body }, content_type, Some(total)))
}

/// The credential header of an `auth` object, marked sensitive (never logged by the HTTP stack).
fn credential(auth: &Value) -> Result<(HeaderName, HeaderValue), String> {
    let get = |k: &str| auth[k].as_str().ok_or_else(|| format!("auth.{k} is missing"));
    let (name, value) = match auth["type"].as_str() {
        Some("bearer") => (AUTHORIZATION, Zeroizing::new(format!("Bearer {}", get("token")?))),
        // The runtime puts a valid access token here (`resolve`, through `oauth::access_token`).
        Some("oauth2") => {
            let token = auth["access_token"].as_str().ok_or_else(|| {
                auth["oauth_problem"].as_str().map_or_else(|| "auth.access_token is missing".to_owned(), str::to_owned)
            })?;
            (AUTHORIZATION, Zeroizing::new(format!("Bearer {token}")))
        }
        Some("basic") => {
            let pair = Zeroizing::new(format!("{}:{}", get("username")?, get("password")?));
            (AUTHORIZATION, Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes()))))
        }
        Some("header") => {
            let n = get("name")?;
            let name =
                HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("auth.name {n:?} is not a header name"))?;
            (name, Zeroizing::new(get("value")?.to_owned()))
        }
        _ => return Err("auth.type must be bearer, basic, header or oauth2".into()),
    };
    let mut value =
        HeaderValue::from_str(&value).map_err(|_| "the credential is not a valid header value".to_owned())?;
    value.set_sensitive(true);
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn build(v: Value) -> Result<HttpJson, String> {
        HttpJson::build(&ResolvedConfig::new(ConnectorType::HttpJson, v), Duration::from_secs(1))
    }

    #[test]
    fn builds_the_request() {
        let h = build(json!({"base_url": "http://127.0.0.1:9/api/", "path": "/people", "method": "POST",
                             "headers": {"Accept": "application/json"},
                             "auth": {"type": "basic", "username": "u", "password": "p"}}))
        .unwrap();
        assert_eq!(h.url.as_str(), "http://127.0.0.1:9/api/people");
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.headers[AUTHORIZATION], "Basic dTpw");
        assert!(h.headers[AUTHORIZATION].is_sensitive());
        let h = build(json!({"base_url": "http://h", "auth": {"type": "header", "name": "X-Api-Key", "value": "k"}}))
            .unwrap();
        assert_eq!(h.headers["x-api-key"], "k");
        let e = build(json!({"base_url": "http://h", "auth": {"type": "header", "name": "bad name", "value": "k"}}));
        assert!(e.err().unwrap().contains("not a header name"));
        let e = build(json!({"base_url": "http://h", "auth": {"type": "bearer", "token": "a\nb"}}));
        assert_eq!(e.err().unwrap(), "the credential is not a valid header value", "no value in the message");
        let oauth = json!({"base_url": "http://h", "auth": {"type": "oauth2", "access_token": "at"}});
        assert_eq!(build(oauth).unwrap().headers[AUTHORIZATION], "Bearer at");
        let e = build(json!({"base_url": "http://h", "auth": {"type": "oauth2", "oauth_problem": "oauth2: not yet"}}));
        assert_eq!(e.err().unwrap(), "oauth2: not yet", "no token: the reason, not a call without credentials");
    }
}
