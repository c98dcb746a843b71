//! The connector runtime against real HTTP servers on loopback that each test starts (axum):
//! http_json's test call with every auth kind (right credentials → ok, wrong → auth), 500 →
//! server, 429 + Retry-After → rate_limited with the duration, a refused connection → network,
//! no answer → timeout, a non-JSON answer → invalid; webhook_out's ping arrives signed, and the
//! test verifies the signature with its own HMAC. Diagnoses never carry secrets, bodies, or URL
//! user info and query. Last, the whole path on a database: resolve a stored connection's
//! secrets (audited), check it, and find the redacted diagnosis in the health history.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use spine_core::connector::ConnectorType;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_core::vault::{Keyring, MasterKey};
use spine_pipeline::connectors::{self, CallOptions, Caller, CheckKind, Diagnosis, ResolvedConfig, run_check};
use spine_store::Store;
use spine_store::repos::connection_health;
use spine_store::repos::connections::{self, NewConnection};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const TOKEN: &str = "canary-rt-TOKEN-8d1f";
const PASSWORD: &str = "canary-rt-PASSWORD-77aa";
const API_KEY: &str = "canary-rt-APIKEY-c3c3";
const SIGNING: &str = "canary-rt-SIGNING-0123456789";

/// Starts `app` on an ephemeral loopback port; the base URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn authorised(h: &HeaderMap) -> bool {
    let basic = format!("Basic {}", STANDARD.encode(format!("reader:{PASSWORD}")));
    let auth = h.get("authorization").and_then(|v| v.to_str().ok());
    auth == Some(&format!("Bearer {TOKEN}")) || auth == Some(&basic) || h.get("x-api-key").is_some_and(|v| v == API_KEY)
}

async fn people(h: HeaderMap) -> impl IntoResponse {
    if authorised(&h) {
        (StatusCode::OK, [("content-type", "application/json")], r#"{"people":[{"name":"Ada Lovelace"}]}"#)
    } else {
        (StatusCode::UNAUTHORIZED, [("content-type", "application/json")], r#"{"error":"bad credentials"}"#)
    }
}

async fn api() -> String {
    let app = Router::new()
        .route("/v1/people", get(people).post(people))
        .route("/boom", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "private stack trace of Ada") }))
        .route("/limited", get(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "slow down") }))
        .route("/slow", get(std::future::pending::<&'static str>))
        .route("/html", get(|| async { ([("content-type", "text/html")], "<html>Ada Lovelace</html>") }))
        .route("/moved", get(|| async { (StatusCode::FOUND, [("location", "http://example.org/")], "") }));
    serve(app).await
}

fn http_json(base: &str, path: &str, auth: Value) -> ResolvedConfig {
    ResolvedConfig::new(
        ConnectorType::HttpJson,
        json!({"base_url": base, "method": "GET", "path": path, "headers": {"Accept": "application/json"},
               "auth": auth}),
    )
}

fn opts() -> CallOptions {
    CallOptions { timeout: Duration::from_millis(500) }
}

async fn test_call(c: &ResolvedConfig) -> Diagnosis {
    let d = run_check(c, CheckKind::Test, opts()).await;
    let text = serde_json::to_string(&d).unwrap();
    for secret in [TOKEN, PASSWORD, API_KEY, SIGNING, "Ada", "stack trace", "api_key=", "user:pw"] {
        assert!(!text.contains(secret), "the diagnosis shows {secret:?}: {text}");
    }
    assert_eq!(d.ok, d.error_class.is_none(), "{text}");
    d
}

#[tokio::test]
async fn http_json_test_call_validates_each_auth_kind() {
    let base = api().await;
    let kinds = [
        (json!({"type": "bearer", "token": TOKEN}), json!({"type": "bearer", "token": "wrong"})),
        (
            json!({"type": "basic", "username": "reader", "password": PASSWORD}),
            json!({"type": "basic", "username": "reader", "password": "wrong"}),
        ),
        (
            json!({"type": "header", "name": "X-Api-Key", "value": API_KEY}),
            json!({"type": "header", "name": "X-Api-Key", "value": "wrong"}),
        ),
    ];
    for (right, wrong) in kinds {
        let d = test_call(&http_json(&base, "/v1/people", right.clone())).await;
        assert!(d.ok, "{right}: {d:?}");
        assert_eq!(d.http_status, Some(200));
        assert_eq!(d.content_type.as_deref(), Some("application/json"));
        assert_eq!(d.body_bytes, Some(36));
        assert!(d.message.starts_with(&format!("GET {base}/v1/people: HTTP 200")), "{}", d.message);
        let d = test_call(&http_json(&base, "/v1/people", wrong.clone())).await;
        assert_eq!((d.ok, d.error_class, d.http_status), (false, Some(ErrorClass::Auth), Some(401)), "{wrong}: {d:?}");
        assert!(d.message.contains("credentials refused"), "{}", d.message);
        assert_eq!(d.job_error().unwrap().class, ErrorClass::Auth);
    }
    // POST works the same; the health check is the same request.
    let mut c = http_json(&base, "/v1/people", json!({"type": "bearer", "token": TOKEN})).expose().clone();
    c["method"] = json!("POST");
    let d = run_check(&ResolvedConfig::new(ConnectorType::HttpJson, c), CheckKind::Health, opts()).await;
    assert!(d.ok && d.check == CheckKind::Health, "{d:?}");
    assert!(d.message.starts_with("POST "), "{}", d.message);
}

#[tokio::test]
async fn http_json_failures_are_classified() {
    let base = api().await;
    let auth = json!({"type": "bearer", "token": TOKEN});

    let d = test_call(&http_json(&base, "/boom", auth.clone())).await;
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::Server), Some(500)), "{d:?}");

    let d = test_call(&http_json(&base, "/limited", auth.clone())).await;
    assert_eq!((d.error_class, d.http_status, d.retry_after_secs), (Some(ErrorClass::RateLimited), Some(429), Some(7)));
    assert_eq!(d.job_error().unwrap().retry_after, Some(Duration::from_secs(7)));

    let d = test_call(&http_json(&base, "/slow", auth.clone())).await;
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::Timeout), None), "{d:?}");
    assert!(d.latency_ms >= 400, "{d:?}");

    let d = test_call(&http_json(&base, "/html", auth.clone())).await;
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::Invalid), Some(200)), "{d:?}");
    assert_eq!(d.content_type.as_deref(), Some("text/html"));
    assert!(d.message.contains("not JSON"), "{}", d.message);

    let d = test_call(&http_json(&base, "/nope", auth.clone())).await;
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::Invalid), Some(404)), "{d:?}");

    // Redirects are not followed (the credential would go along): invalid, with the status.
    let d = test_call(&http_json(&base, "/moved", auth.clone())).await;
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::Invalid), Some(302)), "{d:?}");

    // A port nobody listens on: refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let d = test_call(&http_json(&format!("http://127.0.0.1:{port}"), "/v1/people", auth.clone())).await;
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::Network), None), "{d:?}");
    assert!(d.message.contains("connection refused"), "{}", d.message);

    // User info and query never reach the diagnosis.
    let url = base.replace("http://", "http://user:pw@");
    let d = test_call(&http_json(&url, "/v1/people?api_key=secret-q", auth.clone())).await;
    assert!(d.ok, "{d:?}");
    assert!(!d.message.contains("secret-q"), "{}", d.message);
}

type Received = (HeaderMap, Vec<u8>);

async fn receiver(
    State(tx): State<mpsc::UnboundedSender<Received>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let ok = verify(&headers, &body, SIGNING.as_bytes());
    tx.send((headers, body.to_vec())).unwrap();
    if ok { StatusCode::NO_CONTENT } else { StatusCode::UNAUTHORIZED }
}

/// The receiver's own check of a Standard Webhooks signature.
fn verify(h: &HeaderMap, body: &[u8], key: &[u8]) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (id, ts, sig) = (get("webhook-id"), get("webhook-timestamp"), get("webhook-signature"));
    let Some(b64) = sig.strip_prefix("v1,") else { return false };
    let Ok(given) = STANDARD.decode(b64) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[tokio::test]
async fn webhook_out_ping_is_signed() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let base = serve(Router::new().route("/in", post(receiver)).with_state(tx)).await;
    let hook = |secret: &str| {
        ResolvedConfig::new(
            ConnectorType::WebhookOut,
            json!({"url": format!("{base}/in"), "headers": {"X-Tenant-Label": "acme"},
                   "auth": {"signing_secret": secret}}),
        )
    };
    let d = test_call(&hook(SIGNING)).await;
    assert!(d.ok, "{d:?}");
    assert_eq!(d.http_status, Some(204));
    let (headers, body) = rx.recv().await.unwrap();
    assert!(verify(&headers, &body, SIGNING.as_bytes()), "the receiver verifies the signature itself");
    assert!(!verify(&headers, &body, b"another-secret-of-16"), "a signature under another key does not verify");
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "ping");
    assert_eq!(event["data"]["check"], "test");
    assert!(headers["webhook-id"].to_str().unwrap().starts_with("msg_"));
    let ts: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-tenant-label"], "acme");

    // The health check is a ping too; a receiver refusing the signature is an auth failure.
    let d = run_check(&hook("a-wrong-signing-secret"), CheckKind::Health, opts()).await;
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::Auth), Some(401)), "{d:?}");
    let (_, body) = rx.recv().await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["data"]["check"], "health");
}

#[tokio::test]
async fn a_stored_connection_is_resolved_checked_and_recorded() {
    let db = spine_testkit::test_db().await;
    let store = Store::new(db.pool.clone());
    let tenant = TenantId::new();
    sqlx::query(
        "INSERT INTO core.tenants (id, slug, display_name, integrations_enabled) VALUES ($1, 'rt', 'RT', true)",
    )
    .bind(tenant.as_uuid())
    .execute(&db.pool)
    .await
    .unwrap();
    let ring = Keyring::new(vec![MasterKey::generate("k1").unwrap()], "k1").unwrap();
    spine_store::vault::sync_keys(&store, &ring).await.unwrap();
    let base = api().await;
    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let new = NewConnection {
        connector_type: ConnectorType::HttpJson,
        name: "people",
        config: json!({"base_url": base, "path": "/v1/people", "auth": {"type": "bearer", "token": TOKEN}}),
        metadata: json!({}),
        notes: None,
        created_by: "test",
    };
    let c = connections::create(&mut tx, &ring, new).await.unwrap();
    tx.commit().await.unwrap();

    let caller = Caller { actor: "test:runtime", request_id: Some("req-1") };
    let (d, row) =
        connectors::check_connection(&store, &ring, tenant, &c, CheckKind::Health, caller, opts()).await.unwrap();
    assert!(d.ok, "{d:?}");
    assert_eq!(
        (row.check_kind.as_str(), row.ok, row.http_status, row.checked_by.as_str()),
        ("health", true, Some(200), "test:runtime")
    );
    let access: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM qivault.access_events WHERE connection_id = $1 AND purpose = 'connection health check'",
    )
    .bind(c.id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(access, 1, "the decryption is audited with its purpose");

    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let history = connection_health::history(&mut tx, c.id, 10).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(history, vec![row]);
    let dump: Vec<String> = sqlx::query_scalar("SELECT t::text FROM qiconnect.connection_health_checks t")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(dump.iter().all(|r| !r.contains(TOKEN) && !r.contains("Ada")), "{dump:?}");
}
