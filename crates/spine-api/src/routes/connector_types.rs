//! The connector types (blueprints) Spine knows: served from the registry in code
//! (`spine_core::connector`), which `qiconnect.connector_types` mirrors. Any authenticated caller.

use axum::Json;
use serde::Serialize;
use serde_json::Value;
use spine_core::connector::{Capabilities, Category, ConnectorType};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppPath, Auth};

/// A connector type: identity, JSON Schemas (2020-12) and capabilities.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectorTypeView {
    /// Stable name (never renamed).
    pub name: &'static str,
    pub display_name: &'static str,
    pub category: Category,
    pub description: &'static str,
    /// Schema of the `auth` object of a connection's config.
    #[schema(value_type = Object)]
    pub auth_schema: Value,
    /// Schema of the source fields (source-capable types).
    #[schema(value_type = Option<Object>)]
    pub source_schema: Option<Value>,
    /// Schema of the output fields (output-capable types).
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// Schema of a whole connection config: `auth` plus the source and/or output fields.
    #[schema(value_type = Object)]
    pub connection_schema: Value,
    pub capabilities: Capabilities,
    /// Dotted config paths that are secrets: write-only, stored only in the vault.
    pub secret_fields: Vec<&'static str>,
}

impl From<ConnectorType> for ConnectorTypeView {
    fn from(t: ConnectorType) -> Self {
        Self {
            name: t.name(),
            display_name: t.display_name(),
            category: t.category(),
            description: t.description(),
            auth_schema: t.auth_schema().clone(),
            source_schema: t.source_schema().cloned(),
            output_schema: t.output_schema().cloned(),
            connection_schema: t.connection_schema().clone(),
            capabilities: t.capabilities(),
            secret_fields: t.secret_fields().to_vec(),
        }
    }
}

/// Every connector type.
#[utoipa::path(get, path = "/v1/connector-types", tag = "connections",
    responses((status = 200, body = Vec<ConnectorTypeView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(_auth: Auth) -> Json<Vec<ConnectorTypeView>> {
    Json(ConnectorType::ALL.into_iter().map(Into::into).collect())
}

/// One connector type by name.
#[utoipa::path(get, path = "/v1/connector-types/{name}", tag = "connections",
    params(("name" = String, Path, description = "Stable name, e.g. http_json")),
    responses((status = 200, body = ConnectorTypeView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(_auth: Auth, AppPath(name): AppPath<String>) -> ApiResult<Json<ConnectorTypeView>> {
    ConnectorType::from_name(&name).map(|t| Json(t.into())).ok_or_else(|| ApiError::not_found("connector type"))
}
