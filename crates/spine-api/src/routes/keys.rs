//! A tenant's scoped API keys (admin scope). The key is returned once, at creation.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use spine_core::auth::{GeneratedKey, KeyKind, Scope};
use spine_core::error_code::ErrorCode;
use spine_core::names::DisplayName;
use spine_store::TenantTx;
use spine_store::repos::{audit, keys};
use uuid::Uuid;

use crate::dto::{ApiKey, CreateKey, CreatedKey};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, Auth};
use crate::middleware::RequestId;
use crate::state::AppState;

pub fn validate_key_request(body: &CreateKey) -> Result<(DisplayName, Vec<Scope>), ApiError> {
    let name = DisplayName::parse("name", &body.name)?;
    if body.scopes.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "scopes: give at least one scope")
            .with_details(serde_json::json!({ "field": "scopes" })));
    }
    if body.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "expires_at: must be in the future")
            .with_details(serde_json::json!({ "field": "expires_at" })));
    }
    let mut scopes = body.scopes.clone();
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    Ok((name, scopes))
}

pub async fn audit_key(tx: &mut TenantTx, auth: &Auth, action: &str, prefix: &str, rid: RequestId) -> ApiResult<()> {
    let event = auth.audit_event(tx.tenant(), action, "api_key", prefix.to_owned(), rid, serde_json::json!({}));
    audit::record(tx.conn(), event).await?;
    Ok(())
}

/// Create an API key in the caller's tenant.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppJson(body): AppJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let tenant = auth.require_scope(Scope::Admin)?;
    let (name, scopes) = validate_key_request(&body)?;
    let key = GeneratedKey::generate(KeyKind::Api);
    let mut tx = state.store.tenant_tx(tenant).await?;
    let row = keys::create_api_key(&mut tx, name.as_str(), &scopes, body.expires_at, &key, &auth.0.actor_ref()).await?;
    audit_key(&mut tx, &auth, "api_key.create", &row.key_prefix, rid).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key: key.key.expose().clone(), info: row.into() })))
}

/// List the caller's tenant's keys (prefixes only).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = Vec<ApiKey>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<ApiKey>>> {
    let tenant = auth.require_scope(Scope::Admin)?;
    let mut tx = state.store.tenant_tx(tenant).await?;
    let rows = keys::list_api_keys(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// Revoke a key of the caller's tenant. Revoking twice is harmless.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<Json<ApiKey>> {
    let tenant = auth.require_scope(Scope::Admin)?;
    let mut tx = state.store.tenant_tx(tenant).await?;
    let row = keys::revoke_api_key(&mut tx, id, &auth.0.actor_ref()).await.map_err(|e| match e {
        spine_store::StoreError::NotFound => ApiError::not_found("key"),
        other => other.into(),
    })?;
    audit_key(&mut tx, &auth, "api_key.revoke", &row.key_prefix, rid).await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}
