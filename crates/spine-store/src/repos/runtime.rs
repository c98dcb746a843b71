//! qiserver: Spine records itself as a service on its host and writes periodic health checks.

use uuid::Uuid;

use crate::{StoreError, SystemTx};

/// Upserts the host and the service; returns the service id.
pub async fn register_service(
    tx: &mut SystemTx,
    hostname: &str,
    os_name: &str,
    service_key: &str,
    endpoint_url: &str,
    version: &str,
) -> Result<Uuid, StoreError> {
    let (host_id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO qiserver.hosts (hostname, display_name, os_name, status, last_seen_at) VALUES ($1, $1, $2, 'ok', now())
         ON CONFLICT (hostname) DO UPDATE SET os_name = EXCLUDED.os_name, status = 'ok', last_seen_at = now()
         RETURNING id",
    )
    .bind(hostname)
    .bind(os_name)
    .fetch_one(tx.conn())
    .await?;
    let (id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO qiserver.services (host_id, service_key, display_name, endpoint_url, version, status, last_seen_at)
         VALUES ($1, $2, 'Spine', $3, $4, 'ok', now())
         ON CONFLICT (host_id, service_key) DO UPDATE
           SET endpoint_url = EXCLUDED.endpoint_url, version = EXCLUDED.version, status = 'ok', last_seen_at = now()
         RETURNING id",
    )
    .bind(host_id)
    .bind(service_key)
    .bind(endpoint_url)
    .bind(version)
    .fetch_one(tx.conn())
    .await?;
    Ok(id)
}

/// Records one health check and keeps the last 7 days of them.
pub async fn record_health(
    tx: &mut SystemTx,
    service_id: Uuid,
    status: &str,
    latency_ms: i32,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO qiserver.health_checks (service_id, status, latency_ms, message) VALUES ($1, $2, $3, $4)")
        .bind(service_id)
        .bind(status)
        .bind(latency_ms)
        .bind(message)
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE qiserver.services SET status = $2, last_seen_at = now() WHERE id = $1")
        .bind(service_id)
        .bind(status)
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM qiserver.health_checks WHERE service_id = $1 AND checked_at < now() - interval '7 days'")
        .bind(service_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}
