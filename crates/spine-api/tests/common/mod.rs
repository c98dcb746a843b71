//! Shared helpers for the spine-api integration tests: an in-process app on a fresh database,
//! request helpers that collect the response, fixtures seeded straight through the store, and
//! the error-shape check every 4xx must pass.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use serde_json::Value;
use spine_api::{ApiConfig, AppState};
use spine_core::auth::{Claims, GeneratedKey, KeyKind, Role, Scope, SessionSigner, hash_password};
use spine_core::error_code::ErrorCode;
use spine_core::ids::TenantId;
use spine_core::names::{DisplayName, EmailAddress, TenantSlug};
use spine_core::secret::Secret;
use spine_store::Store;
use spine_store::repos::{keys, tenants, users};
use spine_testkit::TestDb;
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

pub const SIGNING_KEY: &[u8] = b"test-signing-key-0123456789abcdef";

pub fn signer() -> SessionSigner {
    SessionSigner::new(Secret::new(SIGNING_KEY.to_vec()))
}

/// A fresh migrated database and the app state on it.
pub struct Env {
    pub db: TestDb,
    pub state: AppState,
}

/// A collected response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub json: Option<Value>,
    pub request_id: Option<String>,
}

impl Env {
    pub async fn new() -> Self {
        Self::with_config(ApiConfig::default()).await
    }

    pub async fn with_config(config: ApiConfig) -> Self {
        let db = spine_testkit::test_db().await;
        let state = AppState {
            store: Store::new(db.pool.clone()),
            signer: signer(),
            config,
            metrics: None,
            registrar: None,
            keyring: None,
        };
        Self { db, state }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Sends one request through a fresh router and collects the response.
    pub async fn call(&self, req: Request<Body>) -> Resp {
        call(self.state.clone(), req).await
    }

    /// A JSON request (Content-Type: application/json when there is a body).
    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>, bearer: Option<&str>) -> Resp {
        self.call(json_request(method, path, body, bearer)).await
    }

    /// A request with an arbitrary body and content type.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
        bearer: Option<&str>,
    ) -> Resp {
        self.call(raw_request(method, path, content_type, body, bearer)).await
    }

    pub async fn seed_tenant(&self, slug: &str) -> Uuid {
        let mut tx = self.store().system_tx().await.unwrap();
        let slug = TenantSlug::parse(slug).unwrap();
        let name = DisplayName::parse("display_name", &format!("Tenant {slug}")).unwrap();
        let t = tenants::create(&mut tx, &slug, &name, false, "test:seed").await.unwrap();
        tx.commit().await.unwrap();
        t.id
    }

    /// An API key in `tenant`; returns (full key, key id).
    pub async fn seed_api_key(&self, tenant: Uuid, scopes: &[Scope]) -> (String, Uuid) {
        let key = GeneratedKey::generate(KeyKind::Api);
        let mut tx = self.store().tenant_tx(TenantId(tenant)).await.unwrap();
        let row = keys::create_api_key(&mut tx, "seeded", scopes, None, &key, "test:seed").await.unwrap();
        tx.commit().await.unwrap();
        (key.key.expose().clone(), row.id)
    }

    pub async fn revoke_api_key(&self, tenant: Uuid, id: Uuid) {
        let mut tx = self.store().tenant_tx(TenantId(tenant)).await.unwrap();
        keys::revoke_api_key(&mut tx, id, "test:seed").await.unwrap();
        tx.commit().await.unwrap();
    }

    /// An API key whose expiry is already past (the API refuses to issue one, so plain SQL).
    pub async fn seed_expired_api_key(&self, tenant: Uuid) -> String {
        let key = GeneratedKey::generate(KeyKind::Api);
        sqlx::query(
            "INSERT INTO qivault.api_keys (id, tenant_id, name, key_prefix, key_hash, scopes, expires_at)
             VALUES ($1, $2, 'expired', $3, $4, '{admin}', now() - interval '1 hour')",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(&key.prefix)
        .bind(key.hash.as_slice())
        .execute(self.pool())
        .await
        .unwrap();
        key.key.expose().clone()
    }

    /// A service key, optionally revoked at once; returns the full key.
    pub async fn seed_service_key(&self, revoked: bool) -> String {
        let key = GeneratedKey::generate(KeyKind::Service);
        let mut tx = self.store().system_tx().await.unwrap();
        keys::create_service_key(&mut tx, "seeded service key", &key, "test:seed").await.unwrap();
        if revoked {
            keys::revoke_any(&mut tx, &key.prefix, "test:seed").await.unwrap();
        }
        tx.commit().await.unwrap();
        key.key.expose().clone()
    }

    /// A user with a password, optionally a platform admin, optionally a member of a tenant.
    pub async fn seed_user(
        &self,
        email: &str,
        password: &str,
        platform_admin: bool,
        membership: Option<(Uuid, Role)>,
    ) -> Uuid {
        let hash = hash_password(&Secret::new(password.to_owned())).unwrap();
        let email = EmailAddress::parse(email).unwrap();
        let name = DisplayName::parse("display_name", "Seeded User").unwrap();
        let mut tx = self.store().system_tx().await.unwrap();
        let u = users::create(
            &mut tx,
            users::NewUser {
                email: &email,
                display_name: &name,
                password_hash: &hash,
                platform_admin,
                created_by: "test:seed",
            },
        )
        .await
        .unwrap();
        if let Some((tenant, role)) = membership {
            users::add_membership(&mut tx, TenantId(tenant), u.id, role, "test:seed").await.unwrap();
        }
        tx.commit().await.unwrap();
        u.id
    }

    pub async fn suspend_tenant(&self, tenant: Uuid) {
        sqlx::query("UPDATE core.tenants SET status = 'suspended' WHERE id = $1")
            .bind(tenant)
            .execute(self.pool())
            .await
            .unwrap();
    }

    /// Signs in through the API and returns the session token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .send("POST", "/v1/auth/login", Some(&serde_json::json!({ "email": email, "password": password })), None)
            .await;
        assert_eq!(r.status, 200, "login {email}: {}", r.text);
        r.json.unwrap()["token"].as_str().unwrap().to_owned()
    }

    /// A single number from SQL on the superuser pool.
    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every audit row as JSON text (for "no secret in any column" checks).
    pub async fn audit_dump(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT row_to_json(a)::text FROM core.audit_events a ORDER BY occurred_at, id")
            .fetch_all(self.pool())
            .await
            .unwrap()
    }
}

/// Logs to the test's captured output (shown for failing tests), e.g. the cause of a 500.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_ansi(false).with_env_filter("warn").try_init();
}

/// A session token signed with `signer` for `sub` in `tid`, expiring `exp_in` seconds from now.
pub fn session_token(signer: &SessionSigner, sub: Uuid, tid: Option<Uuid>, exp_in: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims { sub, tid, iat: now - 7200, exp: now + exp_in, jti: Uuid::now_v7() };
    signer.sign(&claims).expose().clone()
}

pub async fn call(state: AppState, req: Request<Body>) -> Resp {
    let resp = spine_api::router(state).oneshot(req).await.expect("the router is infallible");
    let status = resp.status().as_u16();
    let request_id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = resp.into_body().collect().await.expect("collecting the body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).ok();
    Resp { status, text, json, request_id }
}

/// Sends every request, `width` at a time, each through its own router; answers in input order.
pub async fn call_all(state: &AppState, reqs: Vec<Request<Body>>, width: usize) -> Vec<Resp> {
    let mut out: Vec<Option<Resp>> = (0..reqs.len()).map(|_| None).collect();
    let mut pending = reqs.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < width.max(1) {
            let Some((i, req)) = pending.next() else { break };
            let state = state.clone();
            running.spawn(async move { (i, call(state, req).await) });
        }
        match running.join_next().await {
            Some(done) => {
                let (i, resp) = done.expect("a request task panicked");
                out[i] = Some(resp);
            }
            None => break,
        }
    }
    out.into_iter().map(|r| r.expect("every request answered")).collect()
}

pub fn json_request(method: &str, path: &str, body: Option<&Value>, bearer: Option<&str>) -> Request<Body> {
    match body {
        Some(b) => raw_request(method, path, Some("application/json"), serde_json::to_vec(b).unwrap(), bearer),
        None => raw_request(method, path, None, Body::empty(), bearer),
    }
}

pub fn raw_request(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
    bearer: Option<&str>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(body.into()).unwrap_or_else(|e| panic!("building {method} {path}: {e}"))
}

impl Resp {
    pub fn code(&self) -> Option<&str> {
        self.json.as_ref()?.get("code")?.as_str()
    }

    /// Checks `{code, message, details?}`: nothing else, a known code whose status is this
    /// response's, a non-empty message.
    pub fn error_shape(&self) -> Result<(), String> {
        let obj = self
            .json
            .as_ref()
            .and_then(Value::as_object)
            .ok_or_else(|| format!("error body is not a JSON object: {:?}", self.text))?;
        if let Some(k) = obj.keys().find(|k| !["code", "message", "details"].contains(&k.as_str())) {
            return Err(format!("unexpected key {k:?} in error body {}", self.text));
        }
        let code = obj.get("code").and_then(Value::as_str).ok_or_else(|| format!("no string code: {}", self.text))?;
        let known = ErrorCode::ALL
            .iter()
            .find(|c| c.as_str() == code)
            .ok_or_else(|| format!("unknown error code {code:?}: {}", self.text))?;
        if known.http_status() != self.status {
            return Err(format!("code {code} belongs with {}, sent with {}", known.http_status(), self.status));
        }
        match obj.get("message").and_then(Value::as_str) {
            Some(m) if !m.trim().is_empty() => Ok(()),
            _ => Err(format!("missing or empty message: {}", self.text)),
        }
    }

    /// Panics unless the status is `status` and, for a 4xx/5xx, the body has the error shape
    /// with `code`.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>, ctx: &str) {
        assert_eq!(self.status, status, "{ctx}: body {}", self.text);
        if status >= 400
            && let Err(e) = self.error_shape()
        {
            panic!("{ctx}: {e}");
        }
        if let Some(c) = code {
            assert_eq!(self.code(), Some(c), "{ctx}: body {}", self.text);
        }
    }

    /// For fuzz-style sweeps: no 5xx, and every 4xx has the error shape.
    pub fn sane(&self) -> Result<(), String> {
        if self.status >= 500 {
            return Err(format!("status {}: {}", self.status, self.text));
        }
        if self.status >= 400 {
            self.error_shape()?;
        }
        Ok(())
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for paths and query values).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Big List of Naughty Strings, from the shared corpus beside the repository. Missing is a
/// failure, not a skip: CI has `shared/` next to the checkout.
pub fn blns() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/bad-input/blns/blns.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the naughty-strings corpus is missing at {} ({e}); it must be checked out as shared/ beside the repo",
            path.display()
        )
    });
    let list: Vec<String> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(list.len() > 400, "{} has only {} strings; wrong file?", path.display(), list.len());
    list
}
