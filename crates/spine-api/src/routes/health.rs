//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::dto::Health;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into(), pending_migrations: None })
}

/// The database answers and every embedded migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match spine_store::migrate::pending(state.store.pool()).await {
        Ok(p) if p.is_empty() => (StatusCode::OK, Json(Health { status: "ready".into(), pending_migrations: None })),
        Ok(p) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "migrations pending".into(), pending_migrations: Some(p) }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health { status: "database unreachable".into(), pending_migrations: None }),
            )
        }
    }
}
