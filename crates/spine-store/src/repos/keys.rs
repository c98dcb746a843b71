//! qivault.api_keys (tenant-owned) and qivault.service_keys (platform). Only prefixes and SHA-256
//! hashes are stored.

use chrono::{DateTime, Utc};
use spine_core::auth::{GeneratedKey, Scope};
use uuid::Uuid;

use crate::{Store, StoreError, SystemTx, TenantTx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ServiceKey {
    pub id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub status: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

/// What authentication needs to know about a presented key.
#[derive(Debug, sqlx::FromRow)]
pub struct KeyAuth {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub active: bool,
    pub tenant_active: bool,
    /// Its last use was recorded more than a minute ago (or never).
    pub stale: bool,
}

const API_COLS: &str =
    "id, tenant_id, name, key_prefix, scopes, status, expires_at, last_used_at, revoked_at, created_at, created_by";
const SVC_COLS: &str = "id, name, key_prefix, status, last_used_at, revoked_at, created_at, created_by";

pub async fn create_api_key(
    tx: &mut TenantTx,
    name: &str,
    scopes: &[Scope],
    expires_at: Option<DateTime<Utc>>,
    key: &GeneratedKey,
    created_by: &str,
) -> Result<ApiKey, StoreError> {
    let tenant = tx.tenant().as_uuid();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO qivault.api_keys (id, tenant_id, name, key_prefix, key_hash, scopes, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {API_COLS}"
    )))
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(name)
    .bind(&key.prefix)
    .bind(key.hash.as_slice())
    .bind(&scopes)
    .bind(expires_at)
    .bind(created_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "api key"))
}

pub async fn list_api_keys(tx: &mut TenantTx) -> Result<Vec<ApiKey>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {API_COLS} FROM qivault.api_keys ORDER BY created_at, id")))
        .fetch_all(tx.conn())
        .await?)
}

/// Revokes a key of the transaction's tenant; `NotFound` for another tenant's key or an unknown id.
pub async fn revoke_api_key(tx: &mut TenantTx, id: Uuid, revoked_by: &str) -> Result<ApiKey, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE qivault.api_keys SET status = 'revoked', revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $2)
         WHERE id = $1 RETURNING {API_COLS}"
    )))
    .bind(id)
    .bind(revoked_by)
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)
}

pub async fn create_service_key(
    tx: &mut SystemTx,
    name: &str,
    key: &GeneratedKey,
    created_by: &str,
) -> Result<ServiceKey, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO qivault.service_keys (id, name, key_prefix, key_hash, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING {SVC_COLS}"
    )))
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(&key.prefix)
    .bind(key.hash.as_slice())
    .bind(created_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "service key"))
}

pub async fn list_service_keys(tx: &mut SystemTx) -> Result<Vec<ServiceKey>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SVC_COLS} FROM qivault.service_keys ORDER BY created_at, id"
    )))
    .fetch_all(tx.conn())
    .await?)
}

/// Revokes a service key or an API key of any tenant, by id or prefix (operators' path).
pub async fn revoke_any(tx: &mut SystemTx, id_or_prefix: &str, revoked_by: &str) -> Result<String, StoreError> {
    let id = Uuid::parse_str(id_or_prefix).ok();
    for table in ["qivault.service_keys", "qivault.api_keys"] {
        let hit: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET status = 'revoked', revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $3)
             WHERE id = $1 OR key_prefix = $2 RETURNING key_prefix"
        )))
        .bind(id)
        .bind(id_or_prefix)
        .bind(revoked_by)
        .fetch_optional(tx.conn())
        .await?;
        if let Some((prefix,)) = hit {
            return Ok(prefix);
        }
    }
    Err(StoreError::NotFound)
}

/// Looks a presented key up by prefix, for authentication: one statement, outside any
/// transaction (every API request runs it). `stale` says whether its use should be recorded.
pub async fn lookup(store: &Store, prefix: &str) -> Result<Option<KeyAuth>, StoreError> {
    let sql = if prefix.starts_with("ssk_") {
        "SELECT id, NULL::uuid AS tenant_id, key_hash, '{}'::text[] AS scopes, status = 'active' AS active, true AS tenant_active,
                last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS stale
         FROM qivault.service_keys WHERE key_prefix = $1"
    } else {
        "SELECT k.id, k.tenant_id, k.key_hash, k.scopes,
                k.status = 'active' AND (k.expires_at IS NULL OR k.expires_at > now()) AS active,
                t.status = 'active' AS tenant_active,
                k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' AS stale
         FROM qivault.api_keys k JOIN core.tenants t ON t.id = k.tenant_id WHERE k.key_prefix = $1"
    };
    Ok(sqlx::query_as(sql).bind(prefix).fetch_optional(store.pool()).await?)
}

/// Records use of a key that authenticated; writes at most once a minute per key (callers skip
/// it unless [`KeyAuth::stale`]), so hot keys cost no write.
pub async fn touch(store: &Store, prefix: &str) -> Result<(), StoreError> {
    let table = if prefix.starts_with("ssk_") { "qivault.service_keys" } else { "qivault.api_keys" };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET last_used_at = now() WHERE key_prefix = $1
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
    )))
    .bind(prefix)
    .execute(store.pool())
    .await?;
    Ok(())
}
