//! Connection checks (decision 0023): the test call and the health check of a connection's stored
//! credentials on demand, recorded in its health history, and the test call that guards a
//! credential rotation. Every answer is the connector runtime's redacted diagnosis: class, status,
//! latency, a short message; never a secret, a response body, or a URL's user info or query.

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spine_core::error_code::ErrorCode;
use spine_core::ids::TenantId;
use spine_pipeline::connectors::{self, CallOptions, Caller, CheckError, CheckKind, Diagnosis};
use spine_store::repos::connection_health::{self, HealthCheck};
use spine_store::repos::connections::{self as repo, Connection};
use spine_store::vault::VaultStoreError;
use uuid::Uuid;

use super::{invalid, keyring, not_found, open};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, AppQuery, Auth};
use crate::middleware::RequestId;
use crate::state::AppState;

/// One check of a connection: the redacted diagnosis, as answered and as kept in the history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthCheckView {
    /// Id of the history row.
    pub id: Uuid,
    pub connection_id: Uuid,
    /// `health` or `test`.
    pub check_kind: String,
    /// The remote answered as the type requires (2xx; JSON for http_json).
    pub ok: bool,
    /// auth, rate_limited, server, network, timeout or invalid; absent when ok.
    pub error_class: Option<String>,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// What the remote's Retry-After said (429, 503).
    pub retry_after_secs: Option<u64>,
    /// Media type of the answer (only in the answer to a check, not in the history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Bytes of the answer read (only in the answer to a check, not in the history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    /// e.g. `GET https://api.example.org/v1/people: HTTP 401 (credentials refused), 12 ms`.
    pub message: String,
    pub checked_at: DateTime<Utc>,
    pub checked_by: String,
}

impl HealthCheckView {
    fn new(row: HealthCheck, d: Option<&Diagnosis>) -> Self {
        Self {
            id: row.id,
            connection_id: row.connection_id,
            check_kind: row.check_kind,
            ok: row.ok,
            error_class: row.error_class,
            http_status: row.http_status.and_then(|s| u16::try_from(s).ok()),
            latency_ms: u64::try_from(row.latency_ms).unwrap_or(0),
            retry_after_secs: row.retry_after_secs.and_then(|s| u64::try_from(s).ok()),
            content_type: d.and_then(|d| d.content_type.clone()),
            body_bytes: d.and_then(|d| d.body_bytes),
            message: row.message,
            checked_at: row.checked_at,
            checked_by: row.checked_by,
        }
    }
}

/// How many history rows to return.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// 1 to 500, default 50; newest first.
    pub limit: Option<i64>,
}

pub(super) fn check_err(e: CheckError) -> ApiError {
    match e {
        CheckError::Invalid(errors) => invalid(&errors),
        CheckError::Store(s) | CheckError::Vault(VaultStoreError::Store(s)) => not_found(s),
        other => ApiError::internal("connection check", other),
    }
}

async fn run(state: &AppState, auth: &Auth, rid: &RequestId, id: Uuid, kind: CheckKind) -> ApiResult<HealthCheckView> {
    let (mut tx, tenant) = open(state, auth).await?;
    let c = repo::get(&mut tx, id).await.map_err(not_found)?;
    // The remote call may take seconds: no transaction stays open across it.
    tx.commit().await?;
    let actor = auth.0.actor_ref();
    let caller = Caller { actor: &actor, request_id: Some(&rid.0) };
    let ring = keyring(state)?;
    let (d, row) = connectors::check_connection(&state.store, ring, tenant, &c, kind, caller, CallOptions::default())
        .await
        .map_err(check_err)?;
    Ok(HealthCheckView::new(row, Some(&d)))
}

/// Run the connection's health check (non-destructive) and record it; 200 with `ok` false when the remote fails.
#[utoipa::path(get, path = "/v1/connections/{id}/health", tag = "connections", params(("id" = Uuid, Path, description = "Connection id")),
    responses((status = 200, body = HealthCheckView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn health(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<Json<HealthCheckView>> {
    Ok(Json(run(&state, &auth, &rid, id, CheckKind::Health).await?))
}

/// Run the connection's test call (validates its stored credentials) and record it; 200 with `ok` false when it fails.
#[utoipa::path(post, path = "/v1/connections/{id}/test", tag = "connections", params(("id" = Uuid, Path, description = "Connection id")),
    responses((status = 200, body = HealthCheckView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<Json<HealthCheckView>> {
    Ok(Json(run(&state, &auth, &rid, id, CheckKind::Test).await?))
}

/// The connection's recorded checks, newest first.
#[utoipa::path(get, path = "/v1/connections/{id}/health/history", tag = "connections",
    params(("id" = Uuid, Path, description = "Connection id"), HistoryQuery),
    responses((status = 200, body = Vec<HealthCheckView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<HealthCheckView>>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=connection_health::MAX_HISTORY).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "limit must be between 1 and 500")
            .with_details(json!({ "field": "limit" })));
    }
    let (mut tx, _) = open(&state, &auth).await?;
    repo::get(&mut tx, id).await.map_err(not_found)?;
    let rows = connection_health::history(&mut tx, id, limit).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(|r| HealthCheckView::new(r, None)).collect()))
}

/// Credential rotation (seed 004): the test call of the candidate config (new values plus kept
/// stored secrets). `Ok` when it passed; otherwise 422 `credentials_rejected` with the diagnosis,
/// after an audit row and a log line (never a value).
pub(super) async fn guard_rotation(
    state: &AppState,
    auth: &Auth,
    tenant: TenantId,
    rid: &RequestId,
    current: &Connection,
    candidate: Value,
) -> ApiResult<Diagnosis> {
    let actor = auth.0.actor_ref();
    let caller = Caller { actor: &actor, request_id: Some(&rid.0) };
    tracing::info!(
        connection_id = %current.id, connector_type = %current.connector_type,
        "credential rotation: testing the new credentials"
    );
    let d = connectors::test_candidate(
        &state.store,
        keyring(state)?,
        tenant,
        current,
        candidate,
        caller,
        CallOptions::default(),
    )
    .await
    .map_err(check_err)?;
    if d.ok {
        return Ok(d);
    }
    let class = d.error_class.map(|c| c.as_str());
    tracing::warn!(
        connection_id = %current.id, error_class = class, http_status = d.http_status,
        "credential rotation refused: the new credentials failed the test call; the old ones stay"
    );
    let mut tx = state.store.tenant_tx(tenant).await?;
    let details = json!({ "connector_type": current.connector_type, "name": current.name, "credentials_rotated": false,
                          "tested": true, "error_class": class, "http_status": d.http_status });
    let mut event =
        auth.audit_event(tenant, "connection.update", "connection", current.id.to_string(), rid.clone(), details);
    event.success = false;
    spine_store::repos::audit::record(tx.conn(), event).await?;
    tx.commit().await?;
    Err(ApiError::new(
        ErrorCode::CredentialsRejected,
        format!("the new credentials failed the connector's test call; the old ones are kept: {}", d.message),
    )
    .with_details(json!({ "diagnosis": d })))
}
