//! qiconnect.connection_health_checks: the health history of connections (decision 0023). One
//! row per health check or test call of a connection's stored credentials, holding only the
//! connector runtime's redacted diagnosis; rows are deleted with their connection.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{StoreError, TenantTx};

/// Most rows one history read returns.
pub const MAX_HISTORY: i64 = 500;

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct HealthCheck {
    pub id: Uuid,
    pub connection_id: Uuid,
    /// `health` or `test`.
    pub check_kind: String,
    pub ok: bool,
    pub error_class: Option<String>,
    pub http_status: Option<i32>,
    pub latency_ms: i64,
    pub retry_after_secs: Option<i64>,
    pub message: String,
    pub checked_at: DateTime<Utc>,
    pub checked_by: String,
}

/// A check's outcome to record; `message` must already be redacted.
pub struct NewHealthCheck<'a> {
    pub connection_id: Uuid,
    pub check_kind: &'a str,
    pub error_class: Option<&'a str>,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    pub retry_after_secs: Option<u64>,
    pub message: &'a str,
    pub checked_by: &'a str,
}

const COLS: &str = "id, connection_id, check_kind, ok, error_class, http_status, latency_ms, retry_after_secs, \
                    message, checked_at, checked_by";

/// Appends one check to the connection's history (`NotFound` for a connection the tenant lacks).
pub async fn record(tx: &mut TenantTx, c: &NewHealthCheck<'_>) -> Result<HealthCheck, StoreError> {
    let message: String = c.message.chars().take(1000).collect();
    let checked_by: String = c.checked_by.chars().take(200).collect();
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO qiconnect.connection_health_checks
             (id, tenant_id, connection_id, check_kind, ok, error_class, http_status, latency_ms, retry_after_secs, message, checked_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLS}"
    )))
    .bind(Uuid::now_v7())
    .bind(tx.tenant().as_uuid())
    .bind(c.connection_id)
    .bind(c.check_kind)
    .bind(c.error_class.is_none())
    .bind(c.error_class)
    .bind(c.http_status.map(i32::from))
    .bind(clamp(c.latency_ms))
    .bind(c.retry_after_secs.map(clamp))
    .bind(message)
    .bind(checked_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Database(e),
    })
}

/// The connection's most recent checks, newest first (at most `limit`, clamped to 1..=MAX_HISTORY).
pub async fn history(tx: &mut TenantTx, connection_id: Uuid, limit: i64) -> Result<Vec<HealthCheck>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM qiconnect.connection_health_checks WHERE connection_id = $1
         ORDER BY checked_at DESC, id DESC LIMIT $2"
    )))
    .bind(connection_id)
    .bind(limit.clamp(1, MAX_HISTORY))
    .fetch_all(tx.conn())
    .await?)
}
