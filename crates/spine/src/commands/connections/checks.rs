//! `spine connection health|test` and the test call that guards a credential rotation in
//! `spine connection update` (decision 0023). Output is the connector runtime's redacted
//! diagnosis; a failed check exits 1 after printing it.

use serde_json::{Value, json};
use spine_core::ids::TenantId;
use spine_core::vault::Keyring;
use spine_pipeline::connectors::{self, CallOptions, Caller, CheckError, CheckKind, Diagnosis};
use spine_store::Store;
use spine_store::repos::connection_health::HealthCheck;
use spine_store::repos::connections::Connection;

use crate::error::CliError;
use crate::output;

/// Who the CLI is, in audit rows and the health history.
pub const ACTOR: &str = "cli";

fn check_err(e: CheckError) -> CliError {
    match e {
        CheckError::Invalid(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            CliError::usage(format!("invalid connection:\n{}", lines.join("\n")))
        }
        CheckError::Vault(v) => crate::commands::vault::vault_error(v),
        CheckError::Store(s) => s.into(),
        other => CliError::failed(other.to_string()),
    }
}

fn failure(d: &Diagnosis) -> String {
    format!("{} ({})", d.message, d.error_class.map(|c| c.as_str()).unwrap_or("ok"))
}

/// Runs the health check or the test call of a stored connection, records it and prints it.
pub async fn run(
    store: &Store,
    ring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    kind: CheckKind,
    json: bool,
) -> Result<(), CliError> {
    let caller = Caller { actor: ACTOR, request_id: None };
    let (d, row) = connectors::check_connection(store, ring, tenant, c, kind, caller, CallOptions::default())
        .await
        .map_err(check_err)?;
    if json {
        output::json(&view(&row, &d));
    } else {
        let state = if d.ok { "ok".to_owned() } else { format!("FAILED ({})", failure(&d)) };
        output::text(&format!("{}  {}  {}  {}\n{}", c.name, c.connector_type, kind.as_str(), state, d.message));
    }
    if d.ok {
        Ok(())
    } else {
        Err(CliError::failed(format!("the {} of connection {} failed: {}", kind.as_str(), c.name, failure(&d))))
    }
}

fn view(row: &HealthCheck, d: &Diagnosis) -> Value {
    json!({
        "id": row.id, "connection_id": row.connection_id, "check_kind": row.check_kind, "ok": row.ok,
        "error_class": row.error_class, "http_status": row.http_status, "latency_ms": row.latency_ms,
        "retry_after_secs": row.retry_after_secs, "content_type": d.content_type, "body_bytes": d.body_bytes,
        "message": row.message, "checked_at": row.checked_at, "checked_by": row.checked_by,
    })
}

/// The test call of new credentials (the candidate config plus kept stored secrets); `Err` keeps
/// the old ones. Logged without values.
pub async fn guard_rotation(
    store: &Store,
    ring: &Keyring,
    tenant: TenantId,
    current: &Connection,
    candidate: Value,
) -> Result<(), CliError> {
    let caller = Caller { actor: ACTOR, request_id: None };
    tracing::info!(connection_id = %current.id, "credential rotation: testing the new credentials");
    let d = connectors::test_candidate(store, ring, tenant, current, candidate, caller, CallOptions::default())
        .await
        .map_err(check_err)?;
    if d.ok {
        return Ok(());
    }
    tracing::warn!(
        connection_id = %current.id, error_class = d.error_class.map(|c| c.as_str()), http_status = d.http_status,
        "credential rotation refused: the new credentials failed the test call; the old ones stay"
    );
    Err(CliError::failed(format!(
        "the new credentials failed the connector's test call; the old ones are kept: {}",
        failure(&d)
    ))
    .hint("check the credentials, or store them untested with --skip-test"))
}
