//! Tenants: created and listed by the service role (or a platform admin); each tenant reads its own.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use spine_core::auth::{GeneratedKey, KeyKind};
use spine_core::ids::TenantId;
use spine_core::names::{DisplayName, TenantSlug};
use spine_store::repos::{audit, keys, tenants};

use crate::dto::{ApiKey, CreateKey, CreateTenant, CreatedKey, Tenant, UpdateTenant};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, Auth};
use crate::middleware::RequestId;
use crate::routes::keys::validate_key_request;
use crate::state::AppState;

fn tenant_not_found(e: spine_store::StoreError) -> ApiError {
    match e {
        spine_store::StoreError::NotFound => ApiError::not_found("tenant"),
        other => other.into(),
    }
}

/// Create a tenant (service role or platform admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppJson(body): AppJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    auth.require_platform()?;
    let slug = TenantSlug::parse(&body.slug)?;
    let name = DisplayName::parse("display_name", &body.display_name)?;
    let mut tx = state.store.system_tx().await?;
    let t = tenants::create(&mut tx, &slug, &name, body.integrations_enabled, &auth.0.actor_ref()).await?;
    let event = auth.audit_event(
        TenantId(t.id),
        "tenant.create",
        "tenant",
        t.id.to_string(),
        rid,
        serde_json::json!({ "slug": t.slug }),
    );
    audit::record(tx.conn(), event).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(t.into())))
}

/// List every tenant (service role or platform admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = Vec<Tenant>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Tenant>>> {
    auth.require_platform()?;
    let mut tx = state.store.system_tx().await?;
    let rows = tenants::list(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// Issue an API key in a tenant on its behalf (service role or platform admin): how a new
/// tenant gets its first admin key.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys", tag = "tenants", request_body = CreateKey,
    params(("tenant" = String, Path, description = "Tenant id or slug")),
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(tenant): AppPath<String>,
    AppJson(body): AppJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    auth.require_platform()?;
    let (name, scopes) = validate_key_request(&body)?;
    let t = {
        let mut sys = state.store.system_tx().await?;
        let t = tenants::find(&mut sys, &tenant).await.map_err(tenant_not_found)?;
        sys.commit().await?;
        t
    };
    let key = GeneratedKey::generate(KeyKind::Api);
    let mut tx = state.store.tenant_tx(TenantId(t.id)).await?;
    let row = keys::create_api_key(&mut tx, name.as_str(), &scopes, body.expires_at, &key, &auth.0.actor_ref()).await?;
    crate::routes::keys::audit_key(&mut tx, &auth, "api_key.create", &row.key_prefix, rid).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key: key.key.expose().clone(), info: ApiKey::from(row) })))
}

/// Change a tenant: display name, integrations allowlist flag, status (service role or platform admin).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", request_body = UpdateTenant,
    params(("tenant" = String, Path, description = "Tenant id or slug")),
    responses((status = 200, body = Tenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(tenant): AppPath<String>,
    AppJson(body): AppJson<UpdateTenant>,
) -> ApiResult<Json<Tenant>> {
    auth.require_platform()?;
    let name = body.display_name.as_deref().map(|n| DisplayName::parse("display_name", n)).transpose()?;
    let mut tx = state.store.system_tx().await?;
    let t = tenants::find(&mut tx, &tenant).await.map_err(tenant_not_found)?;
    let changes = tenants::TenantChanges {
        display_name: name.as_ref(),
        integrations_enabled: body.integrations_enabled,
        status: body.status.map(|s| s.as_str()),
    };
    let t = tenants::update(&mut tx, t.id, changes, &auth.0.actor_ref()).await?;
    let event = auth.audit_event(
        TenantId(t.id),
        "tenant.update",
        "tenant",
        t.id.to_string(),
        rid,
        serde_json::json!({
            "integrations_enabled": body.integrations_enabled,
            "status": body.status.map(|s| s.as_str()),
            "display_name_changed": body.display_name.is_some(),
        }),
    );
    audit::record(tx.conn(), event).await?;
    tx.commit().await?;
    Ok(Json(t.into()))
}

/// The caller's own tenant.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenants",
    responses((status = 200, body = Tenant), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn current(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Tenant>> {
    let t = auth.0.tenant().ok_or_else(|| ApiError::forbidden("a tenant"))?;
    let mut tx = state.store.tenant_tx(t).await?;
    let row = tenants::current(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}
