//! Request and response bodies: the API's public shapes. Requests deny unknown fields.

pub mod jobs;
pub mod schedules;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spine_core::auth::{Role, Scope};
use spine_store::repos::{keys, registry, tenants, users};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// URL-safe unique name: 1-63 of a-z, 0-9 and '-'.
    pub slug: String,
    pub display_name: String,
    /// Allowlist flag for integrations (default false).
    #[serde(default)]
    pub integrations_enabled: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default)]
    pub display_name: Option<String>,
    /// Allowlist flag for integrations.
    #[serde(default)]
    pub integrations_enabled: Option<bool>,
    /// `active` or `suspended`; a suspended tenant's credentials are refused.
    #[serde(default)]
    pub status: Option<TenantStatus>,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub integrations_enabled: bool,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl From<tenants::Tenant> for Tenant {
    fn from(t: tenants::Tenant) -> Self {
        Self {
            id: t.id,
            slug: t.slug,
            display_name: t.display_name,
            integrations_enabled: t.integrations_enabled,
            status: t.status,
            created_at: t.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    /// At least one of: ingest:write, records:read, review:write, connections:admin, jobs:admin, admin.
    pub scopes: Vec<Scope>,
    /// Optional expiry.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// Public prefix of the key; enough to recognise it, useless to authenticate.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

impl From<keys::ApiKey> for ApiKey {
    fn from(k: keys::ApiKey) -> Self {
        Self {
            id: k.id,
            tenant_id: k.tenant_id,
            name: k.name,
            prefix: k.key_prefix,
            scopes: k.scopes,
            status: k.status,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            created_at: k.created_at,
            created_by: k.created_by,
        }
    }
}

/// A key just created. `key` is shown this once and never again.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKey,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// Tenant id or slug to act in; defaults to the user's oldest membership.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    /// Bearer token (HS256 JWT).
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub role: Option<Role>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub display_name: String,
    /// 8 to 1024 characters.
    pub password: String,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl From<users::Member> for Member {
    fn from(m: users::Member) -> Self {
        Self { id: m.id, email: m.email, display_name: m.display_name, role: m.role, created_at: m.created_at }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// service, api_key or user.
    pub kind: String,
    /// Key prefix or user id.
    pub id: String,
    pub tenant_id: Option<Uuid>,
    pub scopes: Vec<String>,
    pub role: Option<Role>,
    pub platform_admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RegistrySchema {
    pub id: Uuid,
    pub schema_name: String,
    pub owning_module: String,
    pub purpose: String,
    pub status: String,
    pub sensitivity_level: Option<String>,
    pub approved: bool,
    pub creation_criteria: Vec<String>,
}

impl From<registry::SchemaRow> for RegistrySchema {
    fn from(r: registry::SchemaRow) -> Self {
        Self {
            id: r.id,
            schema_name: r.schema_name,
            owning_module: r.owning_module,
            purpose: r.purpose,
            status: r.status,
            sensitivity_level: r.sensitivity_level,
            approved: r.approved,
            creation_criteria: r.creation_criteria,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RegistryTable {
    pub id: Uuid,
    pub schema_name: String,
    pub table_name: String,
    pub purpose: String,
    pub owner: String,
    pub status: String,
    pub sensitivity_level: Option<String>,
    pub source_of_truth_policy: Option<String>,
    pub naming_exception_reason: Option<String>,
    pub metadata_waiver_reason: Option<String>,
}

impl From<registry::TableRow> for RegistryTable {
    fn from(r: registry::TableRow) -> Self {
        Self {
            id: r.id,
            schema_name: r.schema_name,
            table_name: r.table_name,
            purpose: r.purpose,
            owner: r.owner,
            status: r.status,
            sensitivity_level: r.sensitivity_level,
            source_of_truth_policy: r.source_of_truth_policy,
            naming_exception_reason: r.naming_exception_reason,
            metadata_waiver_reason: r.metadata_waiver_reason,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RegistryField {
    pub id: Uuid,
    pub field_key: String,
    pub display_name: String,
    pub description: String,
    pub data_type: String,
    pub canonical_format: Option<String>,
    pub sensitivity_level: String,
    pub allowed_values: Option<Vec<String>>,
    /// Where the field is used: schema, table, column and constraints.
    #[schema(value_type = Vec<Object>)]
    pub usages: Value,
}

impl From<registry::FieldRow> for RegistryField {
    fn from(r: registry::FieldRow) -> Self {
        Self {
            id: r.id,
            field_key: r.field_key,
            display_name: r.display_name,
            description: r.description,
            data_type: r.data_type,
            canonical_format: r.canonical_format,
            sensitivity_level: r.sensitivity_level,
            allowed_values: r.allowed_values,
            usages: r.usages,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RegistryFilter {
    /// Only this schema (a PostgreSQL identifier: lowercase letters, digits, `_`).
    pub schema: Option<String>,
    /// Only this table (with `schema`).
    pub table: Option<String>,
}

impl RegistryFilter {
    /// Both filters must look like identifiers; anything else cannot match and is refused with 400.
    pub fn validate(&self) -> Result<(), spine_core::names::InvalidValue> {
        for (field, v) in [("schema", &self.schema), ("table", &self.table)] {
            if let Some(v) = v {
                let ok = !v.is_empty()
                    && v.len() <= 63
                    && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !ok {
                    return Err(spine_core::names::InvalidValue {
                        field,
                        reason: "must be a lowercase identifier (a-z, 0-9, _; at most 63 characters)".into(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_migrations: Option<Vec<i64>>,
}
