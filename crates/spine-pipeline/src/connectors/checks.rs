//! Checks of connections, shared by the API and the CLI: a check of the stored credentials (test
//! call or health check, recorded in the health history) and the test call of a candidate config
//! before a credential rotation. Secrets are decrypted for the call only, each decryption audited
//! with its purpose; logs carry the outcome, never a value.
//!
//! A check of a stored connection is a call like any other: it takes a slot of the connection's
//! rate limit (decision 0024), and is answered `rate_limited` without calling the remote when the
//! window is full or the remote asked to back off; a 429 it meets makes every worker back off.

use serde_json::Value;
use spine_core::connector::ConnectorType;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_core::vault::Keyring;
use spine_store::Store;
use spine_store::repos::connection_health::{self, HealthCheck, NewHealthCheck};
use spine_store::repos::connections::Connection;
use spine_store::repos::rate_limits::Acquire;
use spine_store::vault::Access;

use crate::ratelimit::RateLimiter;

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
    let limiter = RateLimiter::new(store.clone());
    let d = match ConnectorType::from_name(&c.connector_type) {
        Some(t) => match limiter.acquire(tenant, c.id, t.capabilities().rate_limit_per_minute).await? {
            Acquire::Wait(w) => {
                let mut d = Diagnosis::refused(
                    t,
                    kind,
                    ErrorClass::RateLimited,
                    format!("not called: the connection's rate limit says wait {} s", w.retry_after.as_secs().max(1)),
                );
                d.retry_after_secs = Some(w.retry_after.as_secs().max(1));
                d
            }
            Acquire::Admitted { .. } => call(store, keyring, tenant, c, kind, &access, opts, &limiter).await?,
        },
        None => call(store, keyring, tenant, c, kind, &access, opts, &limiter).await?,
    };
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

/// Resolves the secrets, makes the call; a 429 is recorded as the connection's back-off.
#[allow(clippy::too_many_arguments)]
async fn call(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    kind: CheckKind,
    access: &Access<'_>,
    opts: CallOptions,
    limiter: &RateLimiter,
) -> Result<Diagnosis, CheckError> {
    let config = resolve(store, keyring, tenant, c, access).await?;
    let d = run_check(&config, kind, opts).await;
    drop(config);
    if let Some(err) = d.job_error().filter(|e| e.class == ErrorClass::RateLimited) {
        limiter.record_rate_limited(tenant, c.id, err).await;
    }
    Ok(d)
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
