//! OAuth2 authorization code with PKCE for `http_json` connections whose `auth.type` is `oauth2`
//! (decision 0026): [`start`] mints a single-use state and an S256 code challenge, [`callback`]
//! consumes the state and exchanges the code with the sealed verifier, [`access_token`] hands out
//! a valid access token, refreshing it under the connection's lock when it expires within
//! [`REFRESH_WINDOW`], and [`sweep`] refreshes every token about to expire. A refresh the provider
//! refuses (`invalid_grant`) sets the connection to `needs_reauth` with the reason.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use spine_core::ids::TenantId;
use spine_core::secret::Secret;
use spine_core::vault::Keyring;
use spine_store::repos::connections::{self, Connection};
use spine_store::repos::oauth::{self as repo, NewTokens, StateError};
use spine_store::vault::{Access, VaultStoreError};
use spine_store::{Store, StoreError};
use thiserror::Error;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::client;

/// An access token expiring sooner than this is refreshed before use.
pub const REFRESH_WINDOW: Duration = Duration::from_secs(300);
/// How long a started authorization may take.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// Token endpoint calls must finish within this.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum OAuthError {
    #[error("the connection does not use OAuth2 (auth.type is not oauth2)")]
    NotOAuth,
    #[error("the connection has not been authorized yet: start the authorization")]
    NotAuthorized,
    #[error(transparent)]
    State(#[from] StateError),
    /// The provider refused the grant; the connection is `needs_reauth`.
    #[error("needs re-authorization: {0}")]
    NeedsReauth(String),
    /// The provider refused the authorization code (wrong, used, or not matching the verifier).
    #[error("the provider refused the authorization code ({0}): start the authorization again")]
    CodeRefused(String),
    /// The provider could not be asked or answered unusably (transient; nothing changed).
    #[error("token endpoint: {0}")]
    Provider(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultStoreError),
}

/// A started authorization: where to send the person, and until when the state is valid.
#[derive(Debug)]
pub struct Started {
    pub authorization_url: String,
    pub state: String,
    pub expires_at: DateTime<Utc>,
}

fn random_b64(bytes: usize) -> String {
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(&*buf)
}

/// SHA-256 of a state (the form it is stored in).
pub fn state_hash(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// The S256 code challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn auth_of(c: &Connection) -> Result<&Value, OAuthError> {
    let auth = &c.config["auth"];
    if c.connector_type == "http_json" && auth["type"] == "oauth2" { Ok(auth) } else { Err(OAuthError::NotOAuth) }
}

fn url_field(auth: &Value, key: &str) -> Result<Url, OAuthError> {
    let s = auth[key].as_str().ok_or_else(|| OAuthError::Provider(format!("auth.{key} is missing")))?;
    Url::parse(s).map_err(|_| OAuthError::Provider(format!("auth.{key} is not a URL")))
}

/// Starts an authorization of `c`: a random state (stored as its hash, single use, bound to the
/// tenant and the connection) and a PKCE verifier (sealed in the vault); the URL carries the
/// state and the S256 challenge.
pub async fn start(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    by: &str,
) -> Result<Started, OAuthError> {
    let auth = auth_of(c)?;
    let mut url = url_field(auth, "authorize_url")?;
    let state = random_b64(32);
    let verifier = Secret::new(random_b64(32));
    let challenge = code_challenge(verifier.expose());
    let mut tx = store.tenant_tx(tenant).await?;
    let started = repo::create_state(&mut tx, keyring, c.id, &state_hash(&state), &verifier, STATE_TTL, by).await?;
    tx.commit().await?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", auth["client_id"].as_str().unwrap_or(""));
        q.append_pair("redirect_uri", auth["redirect_uri"].as_str().unwrap_or(""));
        if let Some(scope) = auth["scope"].as_str().filter(|s| !s.is_empty()) {
            q.append_pair("scope", scope);
        }
        q.append_pair("state", &state);
        q.append_pair("code_challenge", &challenge);
        q.append_pair("code_challenge_method", "S256");
    }
    Ok(Started { authorization_url: url.to_string(), state, expires_at: started.expires_at })
}

/// The provider's redirect back: consumes the state, exchanges the code with the verifier,
/// stores the tokens and makes the connection active. Returns the tenant and connection. The
/// actor of the vault accesses and of the status change is whoever started the authorization.
pub async fn callback(
    store: &Store,
    keyring: &Keyring,
    code: &str,
    state: &str,
    request_id: Option<&str>,
) -> Result<(TenantId, Uuid), OAuthError> {
    let consumed = repo::consume_state(store, &state_hash(state)).await??;
    let (tenant, id) = (consumed.tenant, consumed.connection_id);
    let access = Access {
        purpose: "oauth2 code exchange",
        actor: &consumed.started_by,
        connection_id: Some(id),
        job_id: None,
        request_id,
    };
    let mut tx = store.tenant_tx(tenant).await?;
    let c = connections::get(&mut tx, id).await?;
    tx.commit().await?;
    let auth = auth_of(&c)?;
    let verifier = repo::take_verifier(store, keyring, &consumed, &access).await?;
    let verifier = Zeroizing::new(String::from_utf8_lossy(verifier.expose()).into_owned());
    let secret = client_secret(store, keyring, tenant, &c, &access).await?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", auth["redirect_uri"].as_str().unwrap_or("")),
        ("client_id", auth["client_id"].as_str().unwrap_or("")),
        ("code_verifier", verifier.as_str()),
    ];
    if let Some(s) = &secret {
        form.push(("client_secret", s.as_str()));
    }
    let token_url = url_field(auth, "token_url")?;
    let t = match token_request(&token_url, &form).await {
        Ok(t) => t,
        Err(TokenError::Rejected(e)) => return Err(OAuthError::CodeRefused(e)),
        Err(TokenError::Failed(e)) => return Err(OAuthError::Provider(e)),
    };
    let mut tx = store.tenant_tx(tenant).await?;
    let tokens = NewTokens {
        access_token: &t.access_token,
        refresh_token: t.refresh_token.as_ref(),
        expires_in_secs: t.expires_in,
        scope: t.scope.as_deref(),
        authorized: true,
    };
    repo::store_tokens(&mut tx, keyring, id, tokens, access.actor).await?;
    repo::set_status(&mut tx, id, "active", None, access.actor).await?;
    tx.commit().await?;
    tracing::info!(connection_id = %id, tenant = %tenant, "oauth2: connection authorized");
    Ok((tenant, id))
}

async fn client_secret(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    access: &Access<'_>,
) -> Result<Option<Zeroizing<String>>, OAuthError> {
    if !c.secrets_set().iter().any(|p| p == "auth.client_secret") {
        return Ok(None);
    }
    let p = connections::read_secret(store, keyring, tenant, c.id, "auth.client_secret", access).await?;
    Ok(Some(Zeroizing::new(String::from_utf8_lossy(p.expose()).into_owned())))
}

fn fresh(g: &repo::Grant) -> bool {
    let window = chrono::Duration::from_std(REFRESH_WINDOW).unwrap_or_default();
    g.expires_at.is_none_or(|e| e > Utc::now() + window)
}

fn plain_string(p: &spine_core::vault::Plaintext) -> Zeroizing<String> {
    Zeroizing::new(String::from_utf8_lossy(p.expose()).into_owned())
}

/// A valid access token of the connection. One that expires within [`REFRESH_WINDOW`] is
/// refreshed first, under the connection's lock (its `oauth_grants` row): callers that waited
/// for the lock find the new token and do not refresh again. A rotated refresh token replaces
/// the stored one. A refused refresh (`invalid_grant`, `invalid_client`, `unauthorized_client`)
/// sets the connection to `needs_reauth`; a transient failure keeps a still-valid token.
pub async fn access_token(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    connection_id: Uuid,
    access: &Access<'_>,
) -> Result<Zeroizing<String>, OAuthError> {
    let access = Access { connection_id: Some(connection_id), ..*access };
    let mut tx = store.tenant_tx(tenant).await?;
    let c = connections::get(&mut tx, connection_id).await?;
    let grant = repo::grant(&mut tx, connection_id).await?;
    tx.commit().await?;
    let auth = auth_of(&c)?;
    if c.status == "needs_reauth" {
        return Err(OAuthError::NeedsReauth(c.status_reason.clone().unwrap_or_default()));
    }
    let grant = grant.ok_or(OAuthError::NotAuthorized)?;
    if fresh(&grant) {
        let p = repo::read_token(store, keyring, tenant, connection_id, repo::ACCESS_TOKEN, &access).await?;
        return Ok(plain_string(&p));
    }
    let mut tx = store.tenant_tx(tenant).await?;
    let grant = repo::lock_grant(&mut tx, connection_id).await?.ok_or(OAuthError::NotAuthorized)?;
    let still_valid = grant.expires_at.is_none_or(|e| e > Utc::now());
    if fresh(&grant) || !grant.refreshable {
        if !still_valid {
            let why = "the access token expired and the provider gave no refresh token: authorize again";
            repo::set_status(&mut tx, connection_id, "needs_reauth", Some(why), access.actor).await?;
            tx.commit().await?;
            return Err(OAuthError::NeedsReauth(why.into()));
        }
        let p = repo::read_secret_in(&mut tx, keyring, connection_id, repo::ACCESS_TOKEN, &access).await?;
        tx.commit().await?;
        return Ok(plain_string(&p));
    }
    let refresh_access = Access { purpose: "oauth2 token refresh", ..access };
    let refresh = plain_string(
        &repo::read_secret_in(&mut tx, keyring, connection_id, repo::REFRESH_TOKEN, &refresh_access).await?,
    );
    // Inside the locked transaction too: a refresh holds one database connection.
    let secret = if c.secrets_set().iter().any(|p| p == "auth.client_secret") {
        let p = repo::read_secret_in(&mut tx, keyring, connection_id, "auth.client_secret", &refresh_access).await?;
        Some(plain_string(&p))
    } else {
        None
    };
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", auth["client_id"].as_str().unwrap_or("")),
    ];
    if let Some(s) = &secret {
        form.push(("client_secret", s.as_str()));
    }
    let token_url = url_field(auth, "token_url")?;
    match token_request(&token_url, &form).await {
        Ok(t) => {
            let tokens = NewTokens {
                access_token: &t.access_token,
                refresh_token: t.refresh_token.as_ref(),
                expires_in_secs: t.expires_in,
                scope: t.scope.as_deref(),
                authorized: false,
            };
            repo::store_tokens(&mut tx, keyring, connection_id, tokens, access.actor).await?;
            tx.commit().await?;
            tracing::info!(connection_id = %connection_id, rotated = t.refresh_token.is_some(), "oauth2: token refreshed");
            Ok(Zeroizing::new(t.access_token.expose().clone()))
        }
        Err(TokenError::Rejected(e)) => {
            let why = format!("the provider refused the refresh token ({e}): authorize the connection again");
            repo::set_status(&mut tx, connection_id, "needs_reauth", Some(&why), access.actor).await?;
            tx.commit().await?;
            tracing::warn!(connection_id = %connection_id, error = %e, "oauth2: refresh refused, connection needs re-authorization");
            Err(OAuthError::NeedsReauth(why))
        }
        Err(TokenError::Failed(e)) if still_valid => {
            tracing::warn!(connection_id = %connection_id, error = %e, "oauth2: refresh failed; the current token is still valid");
            let p = repo::read_secret_in(&mut tx, keyring, connection_id, repo::ACCESS_TOKEN, &access).await?;
            tx.commit().await?;
            Ok(plain_string(&p))
        }
        Err(TokenError::Failed(e)) => Err(OAuthError::Provider(e)),
    }
}

/// Refreshes every refreshable token, of every tenant, that expires within [`REFRESH_WINDOW`]
/// (for the janitor or a job). Returns how many connections were refreshed or found fresh, and
/// how many failed (those that need re-authorization are marked by [`access_token`]).
pub async fn sweep(store: &Store, keyring: &Keyring, actor: &str) -> Result<(usize, usize), StoreError> {
    let access =
        Access { purpose: "oauth2 proactive refresh", actor, connection_id: None, job_id: None, request_id: None };
    let (mut ok, mut failed) = (0, 0);
    for (tenant, id) in repo::expiring(store, REFRESH_WINDOW).await? {
        match access_token(store, keyring, tenant, id, &access).await {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                tracing::warn!(connection_id = %id, error = %e, "oauth2: proactive refresh failed");
            }
        }
    }
    Ok((ok, failed))
}

/// What the token endpoint answered.
struct Tokens {
    access_token: Secret<String>,
    refresh_token: Option<Secret<String>>,
    expires_in: Option<i64>,
    scope: Option<String>,
}

enum TokenError {
    /// An OAuth2 error that a retry will not fix: the grant or the client was refused.
    Rejected(String),
    /// Transport, server or format trouble; may pass.
    Failed(String),
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
    error: Option<String>,
}

/// `application/x-www-form-urlencoded` (RFC 6749 appendix B).
fn form_encode(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    let mut ser = Url::parse("http://form.invalid/").expect("a valid URL");
    ser.query_pairs_mut().extend_pairs(pairs);
    out.push_str(ser.query().unwrap_or(""));
    out
}

async fn token_request(url: &Url, form: &[(&str, &str)]) -> Result<Tokens, TokenError> {
    let body = form_encode(form);
    let resp = client()
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body.as_str().to_owned())
        .timeout(TOKEN_TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            TokenError::Failed(format!("no answer ({})", if e.is_timeout() { "timeout" } else { "network" }))
        })?;
    let status = resp.status().as_u16();
    let bytes = Zeroizing::new(resp.bytes().await.map_err(|_| TokenError::Failed("answer cut off".into()))?.to_vec());
    let parsed: Option<TokenBody> = serde_json::from_slice(&bytes).ok();
    match (status, parsed) {
        (200..=299, Some(TokenBody { access_token: Some(a), refresh_token, expires_in, scope, .. })) => Ok(Tokens {
            access_token: Secret::new(a),
            refresh_token: refresh_token.map(Secret::new),
            expires_in,
            scope,
        }),
        (200..=299, _) => Err(TokenError::Failed(format!("HTTP {status} without an access token"))),
        (400 | 401, Some(TokenBody { error: Some(e), .. }))
            if matches!(e.as_str(), "invalid_grant" | "invalid_client" | "unauthorized_client") =>
        {
            Err(TokenError::Rejected(e))
        }
        (_, Some(TokenBody { error: Some(e), .. })) if e.len() <= 64 && e.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(TokenError::Failed(format!("HTTP {status}, error {e}")))
        }
        _ => Err(TokenError::Failed(format!("HTTP {status}"))),
    }
}
