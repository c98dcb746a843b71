//! What happened to a connection (decision 0022): its status changes, by people and by the
//! runtime (auth failures disable it, failures in a row degrade it), and its rate-limit counters
//! (decision 0024). Same rules as every connection route: `connections:admin`, integrations on.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use spine_core::error_code::ErrorCode;
use spine_store::repos::connections::{self as repo, ConnectionEvent};
use spine_store::repos::rate_limits;
use uuid::Uuid;

use super::{not_found, open};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, AppQuery, Auth};
use crate::state::AppState;

/// One status change of a connection.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionEventView {
    pub id: Uuid,
    pub from_status: String,
    pub to_status: String,
    /// Why, without secrets (the connection's status_reason after the change).
    pub reason: Option<String>,
    /// Who, as kind:id: `user:…`, `api_key:…`, `cli`, or `job:<id>` when the runtime changed it.
    pub actor: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<ConnectionEvent> for ConnectionEventView {
    fn from(e: ConnectionEvent) -> Self {
        Self {
            id: e.id,
            from_status: e.from_status,
            to_status: e.to_status,
            reason: e.reason,
            actor: e.actor,
            created_at: e.created_at,
        }
    }
}

/// How many events to return.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// 1 to 500, default 50; newest first.
    pub limit: Option<i64>,
}

/// The connection's status changes, newest first.
#[utoipa::path(get, path = "/v1/connections/{id}/events", tag = "connections",
    params(("id" = Uuid, Path, description = "Connection id"), EventsQuery),
    responses((status = 200, body = Vec<ConnectionEventView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<EventsQuery>,
) -> ApiResult<Json<Vec<ConnectionEventView>>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "limit must be between 1 and 500")
            .with_details(json!({ "field": "limit" })));
    }
    let (mut tx, _) = open(&state, &auth).await?;
    repo::get(&mut tx, id).await.map_err(not_found)?;
    let rows = repo::events(&mut tx, id, limit).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// A connection's rate-limit counters.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RateLimitView {
    /// The connector type's limit (calls per minute per connection); null when it has none.
    pub limit_per_minute: Option<u32>,
    /// Calls admitted within the last 60 s.
    pub calls_last_minute: i64,
    /// Calls admitted since the counters began.
    pub admitted_calls: i64,
    /// Calls the limiter delayed (window full, or a remote back-off in force).
    pub hits: i64,
    /// 429 answers from the remote.
    pub remote_429s: i64,
    /// When the current remote back-off ends, if one holds.
    pub blocked_until: Option<DateTime<Utc>>,
    pub last_429_at: Option<DateTime<Utc>>,
}

/// The connection's rate-limit counters (all zero before its first limited call).
#[utoipa::path(get, path = "/v1/connections/{id}/rate-limit", tag = "connections",
    params(("id" = Uuid, Path, description = "Connection id")),
    responses((status = 200, body = RateLimitView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rate_limit(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<Json<RateLimitView>> {
    let (mut tx, _) = open(&state, &auth).await?;
    let c = repo::get(&mut tx, id).await.map_err(not_found)?;
    let s = rate_limits::stats(&mut tx, id).await?;
    tx.commit().await?;
    let limit_per_minute = spine_core::connector::ConnectorType::from_name(&c.connector_type)
        .and_then(|t| t.capabilities().rate_limit_per_minute);
    Ok(Json(match s {
        Some(s) => RateLimitView {
            limit_per_minute,
            calls_last_minute: s.calls_last_minute,
            admitted_calls: s.admitted_calls,
            hits: s.hits,
            remote_429s: s.remote_429s,
            blocked_until: s.blocked_until,
            last_429_at: s.last_429_at,
        },
        None => RateLimitView {
            limit_per_minute,
            calls_last_minute: 0,
            admitted_calls: 0,
            hits: 0,
            remote_429s: 0,
            blocked_until: None,
            last_429_at: None,
        },
    }))
}
