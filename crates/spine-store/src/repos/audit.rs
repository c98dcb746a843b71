//! core.audit_events: append-only, written in the same transaction as the action it records.

use serde_json::Value;
use spine_core::ids::TenantId;

use crate::StoreError;

/// One audited action. Never put a credential in `details`.
pub struct AuditEvent<'a> {
    pub tenant: Option<TenantId>,
    pub actor_kind: &'a str,
    pub actor_id: Option<String>,
    pub action: &'a str,
    pub success: bool,
    pub target_kind: Option<&'a str>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

pub async fn record(conn: &mut sqlx::PgConnection, e: AuditEvent<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO core.audit_events (tenant_id, actor_kind, actor_id, action, outcome, target_kind, target_id, request_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.tenant.map(|t| t.as_uuid()))
    .bind(e.actor_kind)
    .bind(e.actor_id)
    .bind(e.action)
    .bind(if e.success { "success" } else { "failure" })
    .bind(e.target_kind)
    .bind(e.target_id)
    .bind(e.request_id)
    .bind(e.details)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: uuid::Uuid,
    pub tenant_id: Option<uuid::Uuid>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

/// The newest events of the transaction's tenant.
pub async fn list(tx: &mut crate::TenantTx, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, occurred_at, actor_kind, actor_id, action, outcome, target_kind, target_id, request_id, details
         FROM core.audit_events ORDER BY occurred_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}
