//! Provenance (issue 4 item 9): `GET /v1/provenance/{id}` for any canonical record (back to the
//! staged row, batch, file version, blob hash and capture event) or any file, batch, staged row or
//! capture (forward to every record derived from it).

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use spine_core::auth::Scope;
use spine_store::repos::provenance;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, Auth};
use crate::state::AppState;

/// Where a record came from, or what came from a file, batch, staged row or capture.
#[utoipa::path(get, path = "/v1/provenance/{id}", tag = "provenance", params(("id" = Uuid, Path, description = "Any record, file, batch, staged row or capture id")),
    responses((status = 200, description = "The trace"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<Json<Value>> {
    let tenant = auth.require_any_scope(&[Scope::RecordsRead, Scope::ReviewWrite])?;
    let mut tx = state.store.tenant_tx(tenant).await?;
    let found = provenance::trace(&mut tx, id).await?;
    tx.commit().await?;
    found.map(Json).ok_or_else(|| ApiError::not_found("record, file, batch, row or capture"))
}
