//! What jobs' outcomes do to the connections they call (decision 0022): recorded by
//! `qiconnect.record_job_outcomes` in the transaction that records the results, and the check a
//! worker makes before running a job that names a connection.

use uuid::Uuid;

use super::finish::Applied;
use crate::StoreError;

/// Feeds the applied results of jobs that name a connection to `qiconnect.record_job_outcomes`
/// (success, or the failure's class and message). Released jobs did not call anything; deferred
/// ones count as rate limited.
pub(super) async fn record_outcomes(conn: &mut sqlx::PgConnection, done: &[Applied]) -> Result<(), StoreError> {
    let (mut connection, mut job, mut kind, mut ok, mut class, mut message) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for a in done {
        let Some(c) = a.connection_id else { continue };
        if a.outcome == "released" {
            continue;
        }
        connection.push(c);
        job.push(a.id);
        kind.push(a.kind.clone().unwrap_or_default());
        ok.push(a.outcome == "succeeded");
        class.push(a.error_class.clone());
        message.push(a.error_message.clone());
    }
    if connection.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT qiconnect.record_job_outcomes($1, $2, $3, $4, $5, $6)")
        .bind(&connection)
        .bind(&job)
        .bind(&kind)
        .bind(&ok)
        .bind(&class)
        .bind(&message)
        .execute(conn)
        .await?;
    Ok(())
}

/// Why a job that calls `connection` must not run now: the connection is disabled or needs
/// re-authentication (with its reason). `None` when it may run (or the connection is gone).
pub async fn blocked_connection(pool: &sqlx::PgPool, connection: Uuid) -> Result<Option<String>, StoreError> {
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT name, status, status_reason FROM qiconnect.connections WHERE id = $1")
            .bind(connection)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((name, status, reason)) if status == "disabled" || status == "needs_reauth" => Some(format!(
            "connection {name} ({connection}) is {status}: {}; fix it, enable it and requeue this job",
            reason.as_deref().unwrap_or("no reason recorded")
        )),
        _ => None,
    })
}
