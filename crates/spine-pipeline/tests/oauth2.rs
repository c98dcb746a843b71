//! OAuth2 (authorization code + PKCE) against a provider this test runs on loopback (axum, real
//! HTTP): its token endpoint checks the PKCE verifier against the challenge of the authorization
//! URL, makes codes single-use, and rotates refresh tokens (a used refresh token is dead). The
//! tests cover the whole flow (tokens only in the vault), state protection (forged, reused,
//! expired), ten concurrent callers near expiry causing exactly one refresh, and a revoked
//! refresh token setting the connection to `needs_reauth` with a reason and an event.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::Url;
use serde_json::{Value, json};
use spine_core::connector::ConnectorType;
use spine_core::ids::TenantId;
use spine_core::vault::{Keyring, MasterKey};
use spine_pipeline::connectors::oauth::{self, OAuthError, code_challenge};
use spine_pipeline::connectors::{self, CallOptions, Caller, CheckKind};
use spine_store::Store;
use spine_store::repos::connections::{self, Connection, NewConnection};
use spine_store::repos::oauth::StateError;
use spine_store::vault::Access;
use tokio::net::TcpListener;

const CLIENT_SECRET: &str = "canary-oauth-CLIENTSECRET-51e2";
const REDIRECT: &str = "https://spine.example.org/v1/oauth/callback";

#[derive(Default)]
struct Provider {
    /// code → (code_challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    live_refresh: HashSet<String>,
    live_access: HashSet<String>,
    minted: u32,
    refreshes: u32,
    /// expires_in of tokens from a code exchange (short: the first use refreshes).
    exchange_expires_in: i64,
}

type Shared = Arc<Mutex<Provider>>;

fn err(e: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": e, "error_description": "see RFC 6749"}))).into_response()
}

fn mint(p: &mut Provider, expires_in: i64) -> Value {
    p.minted += 1;
    let (a, r) = (format!("canary-oauth-ACCESS-{}", p.minted), format!("canary-oauth-REFRESH-{}", p.minted));
    p.live_access.insert(a.clone());
    p.live_refresh.insert(r.clone());
    json!({"access_token": a, "token_type": "Bearer", "expires_in": expires_in, "refresh_token": r, "scope": "people.read"})
}

async fn token(State(p): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut p = p.lock().unwrap();
    if f.get("client_id").map(String::as_str) != Some("spine")
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return err("invalid_client");
    }
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect)) = p.codes.remove(&code) else { return err("invalid_grant") };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            if code_challenge(&verifier) != challenge || f.get("redirect_uri") != Some(&redirect) {
                return err("invalid_grant");
            }
            let exp = p.exchange_expires_in;
            Json(mint(&mut p, exp)).into_response()
        }
        Some("refresh_token") => {
            let r = f.get("refresh_token").cloned().unwrap_or_default();
            if !p.live_refresh.remove(&r) {
                return err("invalid_grant");
            }
            p.refreshes += 1;
            Json(mint(&mut p, 3600)).into_response()
        }
        _ => err("unsupported_grant_type"),
    }
}

async fn people(State(p): State<Shared>, h: HeaderMap) -> Response {
    let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = auth.strip_prefix("Bearer ").is_some_and(|t| p.lock().unwrap().live_access.contains(t));
    if ok { Json(json!({"people": []})).into_response() } else { StatusCode::UNAUTHORIZED.into_response() }
}

struct Env {
    db: spine_testkit::TestDb,
    store: Store,
    ring: Arc<Keyring>,
    tenant: TenantId,
    provider: Shared,
    conn: Connection,
}

async fn env() -> Env {
    let provider: Shared = Arc::new(Mutex::new(Provider { exchange_expires_in: 3600, ..Default::default() }));
    let app = Router::new().route("/token", post(token)).route("/v1/people", get(people)).with_state(provider.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let db = spine_testkit::test_db().await;
    let store = Store::new(db.pool.clone());
    let tenant = TenantId::new();
    sqlx::query(
        "INSERT INTO core.tenants (id, slug, display_name, integrations_enabled) VALUES ($1, 'oa', 'OA', true)",
    )
    .bind(tenant.as_uuid())
    .execute(&db.pool)
    .await
    .unwrap();
    let ring = Arc::new(Keyring::new(vec![MasterKey::generate("k1").unwrap()], "k1").unwrap());
    spine_store::vault::sync_keys(&store, &ring).await.unwrap();
    let config = json!({"base_url": base, "path": "/v1/people", "auth": {"type": "oauth2",
        "authorize_url": format!("{base}/authorize"), "token_url": format!("{base}/token"),
        "client_id": "spine", "client_secret": CLIENT_SECRET, "scope": "people.read", "redirect_uri": REDIRECT}});
    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let new = NewConnection {
        connector_type: ConnectorType::HttpJson,
        name: "crm",
        config,
        metadata: json!({}),
        notes: None,
        created_by: "user:test",
    };
    let conn = connections::create(&mut tx, &ring, new).await.unwrap();
    tx.commit().await.unwrap();
    Env { db, store, ring, tenant, provider, conn }
}

fn access() -> Access<'static> {
    Access { purpose: "test", actor: "user:test", connection_id: None, job_id: None, request_id: None }
}

/// What the provider's authorize page does: checks the URL, mints a code bound to the challenge.
fn authorize(e: &Env, url: &str) -> (String, String) {
    let u = Url::parse(url).unwrap();
    let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
    assert_eq!(u.path(), "/authorize");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "spine");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["scope"], "people.read");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "base64url of a SHA-256");
    let code = format!("code-{}", uuid::Uuid::new_v4());
    e.provider.lock().unwrap().codes.insert(code.clone(), (q["code_challenge"].clone(), q["redirect_uri"].clone()));
    (code, q["state"].clone())
}

async fn authorized(e: &Env) {
    let s = oauth::start(&e.store, &e.ring, e.tenant, &e.conn, "user:test").await.unwrap();
    let (code, state) = authorize(e, &s.authorization_url);
    assert_eq!(state, s.state);
    let (t, id) = oauth::callback(&e.store, &e.ring, &code, &state, None).await.unwrap();
    assert_eq!((t, id), (e.tenant, e.conn.id));
}

/// Every row of every table outside qivault.secrets, as text.
async fn dump(e: &Env) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND (schemaname, tablename) <> ('qivault', 'secrets')",
    )
    .fetch_all(&e.db.pool)
    .await
    .unwrap();
    let mut out = String::new();
    for t in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {t} t")))
            .fetch_all(&e.db.pool)
            .await
            .unwrap();
        out.push_str(&rows.join("\n"));
    }
    out
}

async fn expire_soon(e: &Env) {
    sqlx::query("UPDATE qiconnect.oauth_grants SET expires_at = now() + interval '1 minute' WHERE connection_id = $1")
        .bind(e.conn.id)
        .execute(&e.db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn full_flow_keeps_tokens_in_the_vault_and_checks_with_them() {
    let e = env().await;
    // Not authorized yet: the connection starts as needs_reauth, and a check says so instead of
    // calling without a credential.
    let caller = Caller { actor: "user:test", request_id: None };
    let opts = CallOptions::default();
    let (d, _) = connectors::check_connection(&e.store, &e.ring, e.tenant, &e.conn, CheckKind::Test, caller, opts)
        .await
        .unwrap();
    assert_eq!(e.conn.status, "needs_reauth");
    assert!(!d.ok && d.message.contains("not authorized yet"), "{d:?}");

    authorized(&e).await;
    let fields: Vec<String> = sqlx::query_scalar(
        "SELECT field_name FROM qivault.secrets WHERE owner_id = $1 AND replaced_at IS NULL ORDER BY 1",
    )
    .bind(e.conn.id)
    .fetch_all(&e.db.pool)
    .await
    .unwrap();
    assert_eq!(fields, ["auth_client_secret", "oauth_access_token", "oauth_refresh_token"]);
    let verifiers: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.secrets WHERE owner_kind = 'oauth_state'")
        .fetch_one(&e.db.pool)
        .await
        .unwrap();
    assert_eq!(verifiers, 0, "the code verifier is destroyed once used");

    let (d, _) = connectors::check_connection(&e.store, &e.ring, e.tenant, &e.conn, CheckKind::Health, caller, opts)
        .await
        .unwrap();
    assert!(d.ok, "{d:?}");
    assert_eq!(e.provider.lock().unwrap().refreshes, 0, "a fresh token is used as is");

    // Near expiry: the next use refreshes, and the rotated refresh token replaces the old one.
    expire_soon(&e).await;
    let (d, _) = connectors::check_connection(&e.store, &e.ring, e.tenant, &e.conn, CheckKind::Health, caller, opts)
        .await
        .unwrap();
    assert!(d.ok, "{d:?}");
    assert_eq!(e.provider.lock().unwrap().refreshes, 1);
    let t = oauth::access_token(&e.store, &e.ring, e.tenant, e.conn.id, &access()).await.unwrap();
    assert_eq!(t.as_str(), "canary-oauth-ACCESS-2");
    expire_soon(&e).await;
    let t = oauth::access_token(&e.store, &e.ring, e.tenant, e.conn.id, &access()).await.unwrap();
    assert_eq!(t.as_str(), "canary-oauth-ACCESS-3", "the rotated refresh token was stored and works");

    let text = dump(&e).await;
    assert!(!text.contains("canary-oauth"), "a token or secret outside the vault's ciphertext");
}

#[tokio::test]
async fn forged_reused_and_expired_states_are_refused() {
    let e = env().await;
    let s = oauth::start(&e.store, &e.ring, e.tenant, &e.conn, "user:test").await.unwrap();
    let (code, state) = authorize(&e, &s.authorization_url);
    let forged = oauth::callback(&e.store, &e.ring, &code, "forged-state", None).await;
    assert!(matches!(forged, Err(OAuthError::State(StateError::Unknown))), "{forged:?}");
    oauth::callback(&e.store, &e.ring, &code, &state, None).await.unwrap();
    let again = oauth::callback(&e.store, &e.ring, &code, &state, None).await;
    assert!(matches!(again, Err(OAuthError::State(StateError::Used))), "{again:?}");

    let s = oauth::start(&e.store, &e.ring, e.tenant, &e.conn, "user:test").await.unwrap();
    let (code, state) = authorize(&e, &s.authorization_url);
    sqlx::query("UPDATE qiconnect.oauth_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .execute(&e.db.pool)
        .await
        .unwrap();
    let late = oauth::callback(&e.store, &e.ring, &code, &state, None).await;
    assert!(matches!(late, Err(OAuthError::State(StateError::Expired))), "{late:?}");

    // A code minted for one authorization cannot be exchanged with another's verifier.
    let s1 = oauth::start(&e.store, &e.ring, e.tenant, &e.conn, "user:test").await.unwrap();
    let s2 = oauth::start(&e.store, &e.ring, e.tenant, &e.conn, "user:test").await.unwrap();
    let (code1, _) = authorize(&e, &s1.authorization_url);
    let swapped = oauth::callback(&e.store, &e.ring, &code1, &s2.state, None).await;
    assert!(matches!(swapped, Err(OAuthError::CodeRefused(_))), "PKCE binds the code: {swapped:?}");
}

#[tokio::test]
async fn ten_concurrent_callers_near_expiry_cause_one_refresh() {
    let e = env().await;
    authorized(&e).await;
    expire_soon(&e).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (store, ring, tenant, id) = (e.store.clone(), e.ring.clone(), e.tenant, e.conn.id);
        tasks.push(tokio::spawn(async move {
            oauth::access_token(&store, &ring, tenant, id, &access()).await.map(|t| t.as_str().to_owned())
        }));
    }
    let mut tokens = HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(e.provider.lock().unwrap().refreshes, 1, "exactly one refresh at the provider");
    assert_eq!(tokens, HashSet::from(["canary-oauth-ACCESS-2".to_owned()]));
}

#[tokio::test]
async fn a_revoked_refresh_token_marks_the_connection_needs_reauth() {
    let e = env().await;
    authorized(&e).await;
    e.provider.lock().unwrap().live_refresh.clear();
    expire_soon(&e).await;
    let r = oauth::access_token(&e.store, &e.ring, e.tenant, e.conn.id, &access()).await;
    assert!(matches!(&r, Err(OAuthError::NeedsReauth(why)) if why.contains("invalid_grant")), "{r:?}");
    let (status, reason, active): (String, Option<String>, bool) =
        sqlx::query_as("SELECT status, status_reason, is_active FROM qiconnect.connections WHERE id = $1")
            .bind(e.conn.id)
            .fetch_one(&e.db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), active), ("needs_reauth", true));
    assert!(reason.unwrap().contains("invalid_grant"));
    let events: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT from_status, to_status, actor FROM qiconnect.connection_events WHERE connection_id = $1 ORDER BY created_at",
    )
    .bind(e.conn.id)
    .fetch_all(&e.db.pool)
    .await
    .unwrap();
    // Authorized (needs_reauth → active), then refused (active → needs_reauth).
    assert_eq!(
        events,
        [
            ("needs_reauth".into(), "active".into(), Some("user:test".into())),
            ("active".into(), "needs_reauth".into(), Some("user:test".into()))
        ]
    );
    // No retry: the next call does not ask the provider again.
    let r = oauth::access_token(&e.store, &e.ring, e.tenant, e.conn.id, &access()).await;
    assert!(matches!(r, Err(OAuthError::NeedsReauth(_))));
    assert_eq!(e.provider.lock().unwrap().refreshes, 0);
    // Authorizing again brings it back.
    authorized(&e).await;
    let status: String = sqlx::query_scalar("SELECT status FROM qiconnect.connections WHERE id = $1")
        .bind(e.conn.id)
        .fetch_one(&e.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "active");
}

#[tokio::test]
async fn the_sweep_refreshes_tokens_about_to_expire() {
    let e = env().await;
    authorized(&e).await;
    assert_eq!(oauth::sweep(&e.store, &e.ring, "worker:test").await.unwrap(), (0, 0), "nothing is due");
    expire_soon(&e).await;
    assert_eq!(oauth::sweep(&e.store, &e.ring, "worker:test").await.unwrap(), (1, 0));
    assert_eq!(e.provider.lock().unwrap().refreshes, 1);
    assert_eq!(oauth::sweep(&e.store, &e.ring, "worker:test").await.unwrap(), (0, 0), "fresh again");
}
