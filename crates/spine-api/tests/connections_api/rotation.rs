//! Credential rotation (issue 5 item 4) and health (item 8) over the API, against a JSON API the
//! test runs on loopback: a good new token is tested, stored, and used by the next call; a bad
//! one is refused with 422 `credentials_rejected` and the old token stays in use; health checks
//! and test calls answer a redacted diagnosis and are kept as history; no secret shows anywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use spine_core::auth::Scope;

use super::common::{Env, Resp};
use super::{CANARY, CANARY2, bearer_config, env, no_canary, tables_containing, tenant};

const BAD: &str = "canary-9a9a-REFUSED-token";

/// The remote API: accepts some bearer tokens, remembers every token it was shown.
#[derive(Clone, Default)]
struct Remote {
    accepted: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

impl Remote {
    fn last_seen(&self) -> String {
        self.seen.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

async fn people(State(r): State<Remote>, h: HeaderMap) -> Response {
    let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = auth.strip_prefix("Bearer ").unwrap_or("").to_owned();
    r.seen.lock().unwrap().push(token.clone());
    if r.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "30")], "down for Ada's maintenance")
            .into_response();
    }
    if r.accepted.lock().unwrap().contains(&token) {
        axum::Json(json!({"people": [{"name": "Ada Lovelace", "email": "ada@example.org"}]})).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid token"}))).into_response()
    }
}

async fn remote(accepted: &[&str]) -> (Remote, String) {
    let r = Remote::default();
    r.accepted.lock().unwrap().extend(accepted.iter().map(|s| s.to_string()));
    let app = Router::new().route("/v1/people", get(people)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, base)
}

fn config(base: &str, token: &str) -> Value {
    let mut c = bearer_config(token);
    c["base_url"] = json!(base);
    c
}

fn clean(r: &Resp) {
    no_canary(r);
    assert!(!r.text.contains(BAD), "a secret came back: {}", r.text);
    assert!(!r.text.contains("Ada"), "a response body of the remote came back: {}", r.text);
}

async fn send(env: &Env, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let r = env.send(method, path, body.as_ref(), Some(key)).await;
    clean(&r);
    r
}

#[tokio::test]
async fn rotation_runs_the_test_call_first_and_keeps_the_old_token_on_failure() {
    let env = env().await;
    let (_, key) = tenant(&env, "acme", true, &[Scope::ConnectionsAdmin]).await;
    let (_, key_b) = tenant(&env, "beta", true, &[Scope::ConnectionsAdmin]).await;
    let (remote, base) = remote(&[CANARY, CANARY2]).await;

    // Create calls nothing (it may be offline).
    let body = json!({"connector_type": "http_json", "name": "people", "config": config(&base, CANARY)});
    let r = send(&env, &key, "POST", "/v1/connections", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(remote.seen.lock().unwrap().is_empty(), "create made no remote call");
    let id = r.json.unwrap()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/connections/{id}");

    let r = send(&env, &key, "POST", &format!("{path}/test"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.json.unwrap();
    assert_eq!(
        (d["ok"].as_bool(), d["check_kind"].as_str(), d["http_status"].as_u64()),
        (Some(true), Some("test"), Some(200))
    );
    assert_eq!(d["content_type"], "application/json");
    assert_eq!(remote.last_seen(), CANARY);

    // A good new token: tested with the remote first, then stored; the next call uses it.
    let r = send(&env, &key, "PATCH", &path, Some(json!({"config": config(&base, CANARY2)}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(remote.last_seen(), CANARY2, "the candidate token was tried before it was stored");
    let r = send(&env, &key, "POST", &format!("{path}/test"), None).await;
    assert_eq!(r.json.unwrap()["ok"], true);
    assert_eq!(remote.last_seen(), CANARY2, "the stored token is the new one");

    // A bad new token: 422 with the connector's diagnosis; the old token stays.
    let r = send(&env, &key, "PATCH", &path, Some(json!({"config": config(&base, BAD), "name": "renamed"}))).await;
    assert_eq!(r.status, 422, "{}", r.text);
    r.error_shape().unwrap();
    assert_eq!(r.code(), Some("credentials_rejected"));
    let diag = &r.json.as_ref().unwrap()["details"]["diagnosis"];
    assert_eq!((diag["error_class"].as_str(), diag["http_status"].as_u64()), (Some("auth"), Some(401)), "{diag}");
    assert!(diag["message"].as_str().unwrap().contains("/v1/people"), "{diag}");
    assert_eq!(remote.last_seen(), BAD);
    let r = send(&env, &key, "GET", &path, None).await;
    assert_eq!(r.json.unwrap()["name"], "people", "nothing of the refused update was stored");
    let r = send(&env, &key, "POST", &format!("{path}/test"), None).await;
    assert_eq!(r.json.unwrap()["ok"], true);
    assert_eq!(remote.last_seen(), CANARY2, "the old token is still the one used");
    assert_eq!(env.scalar("SELECT count(*) FROM qivault.secrets").await, 2, "the refused token was never sealed");
    let rejected = env
        .scalar(
            "SELECT count(*) FROM core.audit_events WHERE action = 'connection.update' AND outcome = 'failure'
           AND details->>'error_class' = 'auth'",
        )
        .await;
    assert_eq!(rejected, 1);

    // Changes without a secret call nothing; an invalid candidate is a 400 before any call.
    let calls = remote.seen.lock().unwrap().len();
    let mut keep = config(&base, "x");
    keep["auth"].as_object_mut().unwrap().remove("token");
    let r = send(&env, &key, "PATCH", &path, Some(json!({"config": keep, "notes": "n"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut bad_cfg = config(&base, BAD);
    bad_cfg["method"] = json!("DELETE");
    let r = send(&env, &key, "PATCH", &path, Some(json!({"config": bad_cfg}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(remote.seen.lock().unwrap().len(), calls, "no remote call for these");

    // skip_test stores untested (the remote is down), and says so in the audit log.
    remote.down.store(true, Ordering::SeqCst);
    let r =
        send(&env, &key, "PATCH", &format!("{path}?skip_test=true"), Some(json!({"config": config(&base, CANARY)})))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(remote.seen.lock().unwrap().len(), calls);
    let tested = env.scalar("SELECT count(*) FROM core.audit_events WHERE details->>'tested' = 'false'").await;
    assert_eq!(tested, 1);

    // Another tenant cannot test, check or read the history of this connection.
    for (method, p) in
        [("POST", format!("{path}/test")), ("GET", format!("{path}/health")), ("GET", format!("{path}/health/history"))]
    {
        let r = send(&env, &key_b, method, &p, None).await;
        assert_eq!(r.status, 404, "{method} {p}: {}", r.text);
    }
    for canary in [CANARY, CANARY2, BAD] {
        assert_eq!(tables_containing(&env, canary).await, Vec::<(String, i64)>::new(), "{canary}");
    }
}

#[tokio::test]
async fn health_checks_answer_a_redacted_diagnosis_and_are_kept_as_history() {
    let env = env().await;
    let (_, key) = tenant(&env, "acme", true, &[Scope::ConnectionsAdmin]).await;
    let (remote, base) = remote(&[CANARY]).await;
    let body = json!({"connector_type": "http_json", "name": "people", "config": config(&base, CANARY)});
    let id =
        send(&env, &key, "POST", "/v1/connections", Some(body)).await.json.unwrap()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/connections/{id}");

    let r = send(&env, &key, "GET", &format!("{path}/health"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ok = r.json.unwrap();
    assert_eq!((ok["ok"].as_bool(), ok["check_kind"].as_str()), (Some(true), Some("health")));
    assert_eq!(ok["error_class"], Value::Null);
    assert!(ok["latency_ms"].is_u64() && ok["checked_by"].as_str().unwrap().starts_with("api_key:"), "{ok}");

    remote.down.store(true, Ordering::SeqCst);
    let r = send(&env, &key, "GET", &format!("{path}/health"), None).await;
    assert_eq!(r.status, 200, "a failed check is a diagnosis, not an API error: {}", r.text);
    let down = r.json.unwrap();
    assert_eq!(
        (down["ok"].as_bool(), down["error_class"].as_str(), down["http_status"].as_u64()),
        (Some(false), Some("server"), Some(503))
    );
    assert_eq!(down["retry_after_secs"], 30);
    remote.down.store(false, Ordering::SeqCst);
    remote.accepted.lock().unwrap().clear();
    let r = send(&env, &key, "POST", &format!("{path}/test"), None).await;
    assert_eq!(r.json.unwrap()["error_class"], "auth");

    let r = send(&env, &key, "GET", &format!("{path}/health/history?limit=10"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json.unwrap();
    let summary: Vec<(String, Value)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["check_kind"].as_str().unwrap().to_owned(), h["error_class"].clone()))
        .collect();
    assert_eq!(
        summary,
        [("test".into(), json!("auth")), ("health".into(), json!("server")), ("health".into(), Value::Null)]
    );
    assert_eq!(rows[0]["content_type"], Value::Null, "the history keeps no more than the message");
    let r = send(&env, &key, "GET", &format!("{path}/health/history?limit=1"), None).await;
    assert_eq!(r.json.unwrap().as_array().unwrap().len(), 1);
    let r = send(&env, &key, "GET", &format!("{path}/health/history?limit=0"), None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    r.error_shape().unwrap();

    assert_eq!(env.scalar("SELECT count(*) FROM qiconnect.connection_health_checks").await, 3);
    let dump: Vec<String> = sqlx::query_scalar("SELECT t::text FROM qiconnect.connection_health_checks t")
        .fetch_all(env.pool())
        .await
        .unwrap();
    assert!(dump.iter().all(|row| !row.contains(CANARY) && !row.contains("Ada")), "{dump:?}");
    assert!(tables_containing(&env, CANARY).await.is_empty());

    // The history goes with its connection.
    let r = send(&env, &key, "DELETE", &path, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(env.scalar("SELECT count(*) FROM qiconnect.connection_health_checks").await, 0);
    let r = send(&env, &key, "GET", &format!("{path}/health"), None).await;
    assert_eq!(r.status, 404);
}
