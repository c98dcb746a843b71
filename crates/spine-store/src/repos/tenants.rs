//! core.tenants.

use chrono::{DateTime, Utc};
use spine_core::ids::TenantId;
use spine_core::names::{DisplayName, TenantSlug};
use uuid::Uuid;

use crate::{StoreError, SystemTx, TenantTx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub integrations_enabled: bool,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "id, slug, display_name, integrations_enabled, status, created_at";

pub async fn create(
    tx: &mut SystemTx,
    slug: &TenantSlug,
    name: &DisplayName,
    integrations_enabled: bool,
    created_by: &str,
) -> Result<Tenant, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO core.tenants (id, slug, display_name, integrations_enabled, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLS}"
    )))
    .bind(TenantId::new().as_uuid())
    .bind(slug.as_str())
    .bind(name.as_str())
    .bind(integrations_enabled)
    .bind(created_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "a tenant with this slug already exists"))
}

pub async fn list(tx: &mut SystemTx) -> Result<Vec<Tenant>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM core.tenants ORDER BY created_at, id")))
        .fetch_all(tx.conn())
        .await?)
}

/// By id or slug; `NotFound` for anything that is neither (without asking the database).
pub async fn find(tx: &mut SystemTx, id_or_slug: &str) -> Result<Tenant, StoreError> {
    let id = Uuid::parse_str(id_or_slug).ok();
    if id.is_none() && TenantSlug::parse(id_or_slug).is_err() {
        return Err(StoreError::NotFound);
    }
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM core.tenants WHERE id = $1 OR slug = $2")))
        .bind(id)
        .bind(id_or_slug)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

/// The transaction's own tenant (row-level security hides every other).
pub async fn current(tx: &mut TenantTx) -> Result<Tenant, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM core.tenants")))
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Default)]
pub struct TenantChanges<'a> {
    pub display_name: Option<&'a DisplayName>,
    pub integrations_enabled: Option<bool>,
    /// `active` or `suspended`.
    pub status: Option<&'a str>,
}

pub async fn update(tx: &mut SystemTx, id: Uuid, c: TenantChanges<'_>, updated_by: &str) -> Result<Tenant, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE core.tenants SET display_name = coalesce($2, display_name),
                integrations_enabled = coalesce($3, integrations_enabled), status = coalesce($4, status), updated_by = $5
         WHERE id = $1 RETURNING {COLS}"
    )))
    .bind(id)
    .bind(c.display_name.map(|d| d.as_str()))
    .bind(c.integrations_enabled)
    .bind(c.status)
    .bind(updated_by)
    .fetch_optional(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "tenant"))?
    .ok_or(StoreError::NotFound)
}
