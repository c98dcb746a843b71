//! Connections: a tenant's configured instances of connector types (decision 0021). Every route
//! needs `connections:admin` in a tenant whose `integrations_enabled` flag is on (403 otherwise).
//! Configs are validated with field-level errors; secret fields are sealed into the vault and no
//! response ever carries them: only `secrets_set`, the paths of the secret fields that are set.
//! An update that gives any secret field first runs the type's test call with the new credentials
//! (decision 0023): a failure keeps the old ones and answers 422 `credentials_rejected`.

pub mod checks;
pub mod events;
pub mod oauth;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spine_core::auth::Scope;
use spine_core::connector::{ConnectorType, FieldError};
use spine_core::error_code::ErrorCode;
use spine_core::ids::TenantId;
use spine_core::vault::Keyring;
use spine_pipeline::connectors::gives_secrets;
use spine_store::repos::audit;
use spine_store::repos::connections::{self as repo, Connection, ConnectionChanges, ConnectionError, NewConnection};
use spine_store::vault::VaultStoreError;
use spine_store::{StoreError, TenantTx};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};
use crate::middleware::RequestId;
use crate::state::AppState;

/// A connection as the API shows it: never a secret, only which secret fields are set.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    pub id: Uuid,
    pub connector_type: String,
    pub name: String,
    /// The config without its secret fields.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Dotted paths of the secret fields that are set, e.g. `auth.token`.
    pub secrets_set: Vec<String>,
    pub is_active: bool,
    /// active, needs_reauth, disabled or degraded.
    pub status: String,
    pub status_reason: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    /// Failed calls in a row after which the runtime marks the connection degraded.
    pub degrade_after_failures: i32,
    /// How long a degraded connection may keep failing before the runtime disables it.
    pub disable_after_secs: i64,
    /// Failed calls (jobs) in a row since the last success.
    pub consecutive_failures: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error_class: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        Self {
            secrets_set: c.secrets_set(),
            id: c.id,
            connector_type: c.connector_type,
            name: c.name,
            config: c.config,
            is_active: c.is_active,
            status: c.status,
            status_reason: c.status_reason,
            last_used_at: c.last_used_at,
            metadata: c.metadata,
            notes: c.notes,
            created_at: c.created_at,
            updated_at: c.updated_at,
            created_by: c.created_by,
            updated_by: c.updated_by,
            degrade_after_failures: c.degrade_after_failures,
            disable_after_secs: c.disable_after_secs,
            consecutive_failures: c.consecutive_failures,
            failing_since: c.failing_since,
            last_error_class: c.last_error_class,
            last_error_at: c.last_error_at,
        }
    }
}

/// A new connection. `config` holds `auth` (with its secrets) and the type's other fields.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// Stable name of a connector type (see /v1/connector-types).
    pub connector_type: String,
    /// Unique within the tenant.
    pub name: String,
    #[schema(value_type = Object)]
    pub config: Value,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub notes: Option<String>,
}

/// Changes to a connection; absent fields stay. A new `config` replaces the old one; secret fields
/// left out keep their stored values while `auth.type` is unchanged.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnection {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub notes: Option<String>,
    /// Failed calls in a row (1–1000) after which the connection is marked degraded.
    pub degrade_after_failures: Option<i32>,
    /// Seconds (0–31536000) a degraded connection may keep failing before it is disabled.
    pub disable_after_secs: Option<i64>,
}

/// Options of an update.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    /// Store new credentials without the connector's test call (e.g. while the remote is down);
    /// recorded in the audit log. Default false.
    pub skip_test: Option<bool>,
}

/// Why a connection is disabled.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DisableQuery {
    pub reason: Option<String>,
}

/// 400 with every field's problem listed in `details.fields`.
pub fn invalid(errors: &[FieldError]) -> ApiError {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ApiError::new(ErrorCode::InvalidRequest, format!("invalid connection: {}", text.join("; ")))
        .with_details(json!({ "fields": errors }))
}

fn map_err(e: ConnectionError) -> ApiError {
    match e {
        ConnectionError::Invalid(errors) => invalid(&errors),
        ConnectionError::Store(s) => not_found(s),
        ConnectionError::Vault(VaultStoreError::Store(s)) => not_found(s),
        ConnectionError::Vault(VaultStoreError::Conflict(w)) => ApiError::new(ErrorCode::Conflict, w),
        ConnectionError::Vault(other) => ApiError::internal("vault error", other),
    }
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("connection"),
        other => other.into(),
    }
}

/// The caller's tenant transaction, after the scope and the tenant's integrations flag.
async fn open(state: &AppState, auth: &Auth) -> ApiResult<(TenantTx, TenantId)> {
    let tenant = auth.require_scope(Scope::ConnectionsAdmin)?;
    let mut tx = state.store.tenant_tx(tenant).await?;
    if !repo::integrations_enabled(&mut tx).await? {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "integrations are not enabled for this tenant; a platform admin can enable them (integrations_enabled)",
        )
        .with_details(json!({ "reason": "integrations_disabled" })));
    }
    Ok((tx, tenant))
}

fn keyring(state: &AppState) -> ApiResult<&Keyring> {
    state.keyring.as_deref().ok_or_else(|| ApiError::internal("connections", "this process has no vault keyring"))
}

async fn record(
    tx: &mut TenantTx,
    auth: &Auth,
    tenant: TenantId,
    action: &str,
    c: &Connection,
    rid: RequestId,
) -> ApiResult<()> {
    record_with(tx, auth, tenant, action, c, rid, json!({})).await
}

async fn record_with(
    tx: &mut TenantTx,
    auth: &Auth,
    tenant: TenantId,
    action: &str,
    c: &Connection,
    rid: RequestId,
    extra: Value,
) -> ApiResult<()> {
    let mut details = json!({ "connector_type": c.connector_type, "name": c.name, "secrets_set": c.secrets_set() });
    if let (Some(d), Value::Object(e)) = (details.as_object_mut(), extra) {
        d.extend(e);
    }
    audit::record(tx.conn(), auth.audit_event(tenant, action, "connection", c.id.to_string(), rid, details)).await?;
    Ok(())
}

/// The tenant's connections.
#[utoipa::path(get, path = "/v1/connections", tag = "connections",
    responses((status = 200, body = Vec<ConnectionView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<ConnectionView>>> {
    let (mut tx, _) = open(&state, &auth).await?;
    let rows = repo::list(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// Create a connection; its config is validated against the type's schema, secrets go to the vault.
#[utoipa::path(post, path = "/v1/connections", tag = "connections", request_body = CreateConnection,
    responses((status = 201, body = ConnectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppJson(b): AppJson<CreateConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let (mut tx, tenant) = open(&state, &auth).await?;
    let Some(connector_type) = ConnectorType::from_name(&b.connector_type) else {
        let known: Vec<&str> = ConnectorType::ALL.iter().map(|t| t.name()).collect();
        return Err(invalid(&[FieldError {
            field: "connector_type".into(),
            message: format!("must be one of {}", known.join(", ")),
        }]));
    };
    let actor = auth.0.actor_ref();
    let new = NewConnection {
        connector_type,
        name: &b.name,
        config: b.config,
        metadata: b.metadata.unwrap_or_else(|| json!({})),
        notes: b.notes.as_deref(),
        created_by: &actor,
    };
    let c = repo::create(&mut tx, keyring(&state)?, new).await.map_err(map_err)?;
    record(&mut tx, &auth, tenant, "connection.create", &c, rid).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// One connection.
#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", params(("id" = Uuid, Path, description = "Connection id")),
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<Json<ConnectionView>> {
    let (mut tx, _) = open(&state, &auth).await?;
    let c = repo::get(&mut tx, id).await.map_err(not_found)?;
    tx.commit().await?;
    Ok(Json(c.into()))
}

/// Update a connection's name, config (revalidated; new secrets replace the stored ones), metadata or notes.
/// New secrets are first tried with the connector's test call (unless `skip_test=true`): a failure
/// keeps the old credentials and answers 422 `credentials_rejected` with the redacted diagnosis.
#[utoipa::path(patch, path = "/v1/connections/{id}", tag = "connections", request_body = UpdateConnection,
    params(("id" = Uuid, Path, description = "Connection id"), UpdateQuery),
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<UpdateQuery>,
    AppJson(b): AppJson<UpdateConnection>,
) -> ApiResult<Json<ConnectionView>> {
    let (mut tx, tenant) = open(&state, &auth).await?;
    let current = repo::get(&mut tx, id).await.map_err(not_found)?;
    let rotation = match (&b.config, ConnectorType::from_name(&current.connector_type)) {
        (Some(config), Some(t)) => gives_secrets(t, config),
        _ => false,
    };
    let skip_test = q.skip_test.unwrap_or(false);
    if rotation && !skip_test {
        // No transaction stays open across the remote call; the row must be unchanged after it.
        tx.commit().await?;
        let candidate = b.config.clone().unwrap_or_default();
        checks::guard_rotation(&state, &auth, tenant, &rid, &current, candidate).await?;
        tx = state.store.tenant_tx(tenant).await?;
        let now = repo::lock(&mut tx, id).await.map_err(not_found)?;
        if now.updated_at != current.updated_at {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the connection changed while the new credentials were tested; send the update again",
            ));
        }
    }
    let changes = ConnectionChanges {
        name: b.name.as_deref(),
        config: b.config,
        metadata: b.metadata,
        notes: b.notes.as_deref(),
        degrade_after_failures: b.degrade_after_failures,
        disable_after_secs: b.disable_after_secs,
    };
    let c = repo::update(&mut tx, keyring(&state)?, id, changes, &auth.0.actor_ref()).await.map_err(map_err)?;
    if rotation {
        tracing::info!(connection_id = %id, tested = !skip_test, "credential rotation: new credentials stored");
        let extra = json!({ "credentials_rotated": true, "tested": !skip_test });
        record_with(&mut tx, &auth, tenant, "connection.update", &c, rid, extra).await?;
    } else {
        record(&mut tx, &auth, tenant, "connection.update", &c, rid).await?;
    }
    tx.commit().await?;
    Ok(Json(c.into()))
}

/// Disable a connection (with an optional reason); jobs stop using it.
#[utoipa::path(post, path = "/v1/connections/{id}/disable", tag = "connections",
    params(("id" = Uuid, Path, description = "Connection id"), DisableQuery),
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn disable(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<DisableQuery>,
) -> ApiResult<Json<ConnectionView>> {
    let (mut tx, tenant) = open(&state, &auth).await?;
    let by = auth.0.actor_ref();
    let c = repo::set_enabled(&mut tx, id, false, q.reason.as_deref(), &by).await.map_err(not_found)?;
    record(&mut tx, &auth, tenant, "connection.disable", &c, rid).await?;
    tx.commit().await?;
    Ok(Json(c.into()))
}

/// Enable a connection again (status active).
#[utoipa::path(post, path = "/v1/connections/{id}/enable", tag = "connections",
    params(("id" = Uuid, Path, description = "Connection id")),
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn enable(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<Json<ConnectionView>> {
    let (mut tx, tenant) = open(&state, &auth).await?;
    let c = repo::set_enabled(&mut tx, id, true, None, &auth.0.actor_ref()).await.map_err(not_found)?;
    record(&mut tx, &auth, tenant, "connection.enable", &c, rid).await?;
    tx.commit().await?;
    Ok(Json(c.into()))
}

/// Delete a connection and every version of its secrets.
#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections", params(("id" = Uuid, Path, description = "Connection id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (mut tx, tenant) = open(&state, &auth).await?;
    let c = repo::get(&mut tx, id).await.map_err(not_found)?;
    repo::delete(&mut tx, id).await.map_err(map_err)?;
    record(&mut tx, &auth, tenant, "connection.delete", &c, rid).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
