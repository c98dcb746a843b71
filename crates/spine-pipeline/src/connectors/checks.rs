//! Checks of connections, shared by the API and the CLI: a check of the stored credentials (test
//! call or health check, recorded in the health history) and the test call of a candidate config
//! before a credential rotation. Secrets are decrypted for the call only, each decryption audited
//! with its purpose; logs carry the outcome, never a value.

use serde_json::Value;
use spine_core::ids::TenantId;
use spine_core::vault::Keyring;
use spine_store::Store;
use spine_store::repos::connection_health::{self, HealthCheck, NewHealthCheck};
use spine_store::repos::connections::Connection;
use spine_store::vault::Access;

use super::{CallOptions, CheckKind, Diagnosis, ResolveError, resolve, resolve_candidate, run_check};

/// What can keep a check from running at all (a failed remote call is a diagnosis, not this).
pub type CheckError = ResolveError;

/// Who asks for a check, for the vault's audit and the history.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// `kind:id` (user, API key, `cli`, worker).
    pub actor: &'a str,
    pub request_id: Option<&'a str>,
}

/// Runs the test call or the health check of a stored connection and appends the diagnosis to
/// its health history.
pub async fn check_connection(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    kind: CheckKind,
    caller: Caller<'_>,
    opts: CallOptions,
) -> Result<(Diagnosis, HealthCheck), CheckError> {
    let purpose = match kind {
        CheckKind::Test => "connection test call",
        CheckKind::Health => "connection health check",
    };
    let access =
        Access { purpose, actor: caller.actor, connection_id: Some(c.id), job_id: None, request_id: caller.request_id };
    let config = resolve(store, keyring, tenant, c, &access).await?;
    let d = run_check(&config, kind, opts).await;
    drop(config);
    tracing::info!(
        connection_id = %c.id, connector_type = d.connector_type, check = kind.as_str(), ok = d.ok,
        error_class = d.error_class.map(|e| e.as_str()), http_status = d.http_status, latency_ms = d.latency_ms,
        "connection check"
    );
    let mut tx = store.tenant_tx(tenant).await?;
    let row = connection_health::record(
        &mut tx,
        &NewHealthCheck {
            connection_id: c.id,
            check_kind: kind.as_str(),
            error_class: d.error_class.map(|e| e.as_str()),
            http_status: d.http_status,
            latency_ms: d.latency_ms,
            retry_after_secs: d.retry_after_secs,
            message: &d.message,
            checked_by: caller.actor,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((d, row))
}

/// The test call of the config an update would store: `candidate` plus the stored secrets it
/// keeps (credential rotation, seed 004). Nothing is stored or recorded; the caller stores the
/// new credentials only when the diagnosis is ok.
pub async fn test_candidate(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    current: &Connection,
    candidate: Value,
    caller: Caller<'_>,
    opts: CallOptions,
) -> Result<Diagnosis, CheckError> {
    let access = Access {
        purpose: "credential rotation test call",
        actor: caller.actor,
        connection_id: Some(current.id),
        job_id: None,
        request_id: caller.request_id,
    };
    let config = resolve_candidate(store, keyring, tenant, current, candidate, &access).await?;
    let d = run_check(&config, CheckKind::Test, opts).await;
    drop(config);
    tracing::info!(
        connection_id = %current.id, connector_type = d.connector_type, ok = d.ok,
        error_class = d.error_class.map(|e| e.as_str()), http_status = d.http_status, latency_ms = d.latency_ms,
        "credential rotation: test call of the new credentials"
    );
    Ok(d)
}
