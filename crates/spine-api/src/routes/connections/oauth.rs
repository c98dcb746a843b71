//! OAuth2 authorization of `http_json` connections with `auth.type` `oauth2` (decision 0026).
//! `POST /v1/connections/{id}/oauth/start` (connections:admin, integrations on) answers the
//! provider's authorization URL with a single-use state and an S256 PKCE challenge;
//! `GET /v1/oauth/callback` is where the provider sends the person back: it takes no bearer
//! token, the state authenticates it (unknown, expired or used: 400). Tokens never appear in an
//! answer; they go to the vault.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use spine_core::error_code::ErrorCode;
use spine_pipeline::connectors::oauth::{self, OAuthError};
use spine_store::repos::connections as repo;
use spine_store::vault::VaultStoreError;
use uuid::Uuid;

use super::{keyring, not_found, open};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, AppQuery, Auth};
use crate::middleware::RequestId;
use crate::state::AppState;

/// A started authorization.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthStartView {
    /// Send the person here (the provider's authorize endpoint with client_id, redirect_uri,
    /// scope, state and an S256 code_challenge).
    pub authorization_url: String,
    /// The single-use state in the URL; the callback must bring it back before `expires_at`.
    pub state: String,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of a callback.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthCallbackView {
    pub connection_id: Uuid,
    /// `active`: the tokens are stored and the connection is usable.
    pub status: String,
}

/// What the provider sends back.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the person or the provider refused (e.g. `access_denied`).
    pub error: Option<String>,
}

fn oauth_err(e: OAuthError) -> ApiError {
    let bad = |reason: &str, msg: String| {
        ApiError::new(ErrorCode::InvalidRequest, msg).with_details(json!({ "reason": reason }))
    };
    match e {
        OAuthError::NotOAuth => bad("not_oauth2", e.to_string()),
        OAuthError::State(s) => bad("invalid_state", s.to_string()),
        OAuthError::CodeRefused(_) => bad("code_refused", e.to_string()),
        OAuthError::NeedsReauth(_) => bad("needs_reauth", e.to_string()),
        OAuthError::NotAuthorized => bad("not_authorized", e.to_string()),
        OAuthError::Provider(_) => ApiError::new(ErrorCode::Unavailable, e.to_string()),
        OAuthError::Store(s) | OAuthError::Vault(VaultStoreError::Store(s)) => not_found(s),
        other => ApiError::internal("oauth2", other),
    }
}

/// Start the OAuth2 authorization of a connection: the URL to send the person to.
#[utoipa::path(post, path = "/v1/connections/{id}/oauth/start", tag = "connections",
    params(("id" = Uuid, Path, description = "Connection id")),
    responses((status = 200, body = OAuthStartView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<Json<OAuthStartView>> {
    let (mut tx, tenant) = open(&state, &auth).await?;
    let c = repo::get(&mut tx, id).await.map_err(not_found)?;
    tx.commit().await?;
    let actor = auth.0.actor_ref();
    let s = oauth::start(&state.store, keyring(&state)?, tenant, &c, &actor).await.map_err(oauth_err)?;
    Ok(Json(OAuthStartView { authorization_url: s.authorization_url, state: s.state, expires_at: s.expires_at }))
}

/// The provider's redirect back (no bearer: the state authenticates). Exchanges the code with
/// the PKCE verifier and stores the tokens in the vault; 400 for an unknown, expired or used state.
#[utoipa::path(get, path = "/v1/oauth/callback", tag = "connections", params(CallbackQuery),
    responses((status = 200, body = OAuthCallbackView), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    axum::Extension(rid): axum::Extension<RequestId>,
    AppQuery(q): AppQuery<CallbackQuery>,
) -> ApiResult<Json<OAuthCallbackView>> {
    if let Some(e) = q.error {
        let shown =
            if e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') { e } else { "error".into() };
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the provider refused the authorization ({shown})"),
        )
        .with_details(json!({ "reason": "provider_refused" })));
    }
    let (Some(code), Some(st)) = (q.code.filter(|c| !c.is_empty()), q.state.filter(|s| !s.is_empty())) else {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "code and state are required")
            .with_details(json!({ "reason": "invalid_state" })));
    };
    let (_, id) = oauth::callback(&state.store, keyring(&state)?, &code, &st, Some(&rid.0)).await.map_err(oauth_err)?;
    Ok(Json(OAuthCallbackView { connection_id: id, status: "active".into() }))
}
