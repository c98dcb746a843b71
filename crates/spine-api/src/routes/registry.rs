//! The read-only governance registry: what every schema, table and field means.

use axum::Json;
use axum::extract::State;
use spine_store::repos::registry;

use crate::dto::{RegistryField, RegistryFilter, RegistrySchema, RegistryTable};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppQuery, Auth};
use crate::state::AppState;

/// Registered schemas.
#[utoipa::path(get, path = "/v1/registry/schemas", tag = "registry",
    responses((status = 200, body = Vec<RegistrySchema>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn schemas(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<Vec<RegistrySchema>>> {
    let mut tx = state.store.read_tx().await?;
    Ok(Json(registry::schemas(&mut tx).await?.into_iter().map(Into::into).collect()))
}

/// Registered tables, optionally of one schema.
#[utoipa::path(get, path = "/v1/registry/tables", tag = "registry", params(RegistryFilter),
    responses((status = 200, body = Vec<RegistryTable>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tables(
    State(state): State<AppState>,
    _auth: Auth,
    AppQuery(f): AppQuery<RegistryFilter>,
) -> ApiResult<Json<Vec<RegistryTable>>> {
    f.validate()?;
    let mut tx = state.store.read_tx().await?;
    Ok(Json(registry::tables(&mut tx, f.schema.as_deref()).await?.into_iter().map(Into::into).collect()))
}

/// Registered fields with their usages, optionally limited to one schema or table.
#[utoipa::path(get, path = "/v1/registry/fields", tag = "registry", params(RegistryFilter),
    responses((status = 200, body = Vec<RegistryField>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn fields(
    State(state): State<AppState>,
    _auth: Auth,
    AppQuery(f): AppQuery<RegistryFilter>,
) -> ApiResult<Json<Vec<RegistryField>>> {
    f.validate()?;
    let mut tx = state.store.read_tx().await?;
    let rows = registry::fields(&mut tx, f.schema.as_deref(), f.table.as_deref()).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}
