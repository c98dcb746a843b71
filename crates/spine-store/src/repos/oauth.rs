//! OAuth2 state of connections (decision 0026). `qiconnect.oauth_states` holds authorizations in
//! progress (the state only as its SHA-256; the PKCE code_verifier sealed in the vault under owner
//! kind `oauth_state`), single use and bound to tenant and connection. `qiconnect.oauth_grants`
//! holds the non-secret facts of a connection's tokens (expiry, scope, refreshes); the tokens are
//! sealed in the vault under the connection (`oauth_access_token`, `oauth_refresh_token`). Its
//! row, locked with [`lock_grant`], is the per-connection refresh lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use spine_core::ids::TenantId;
use spine_core::secret::Secret;
use spine_core::vault::{Keyring, Plaintext};
use thiserror::Error;
use uuid::Uuid;

use crate::repos::connections::{self, OWNER_KIND};
use crate::vault::{self, Access, SecretOwner, VaultStoreError};
use crate::{Store, StoreError, TenantTx};

/// Owner kind of the sealed PKCE code verifiers.
pub const STATE_OWNER_KIND: &str = "oauth_state";
/// Dotted paths (for `connections::read_secret`) of the sealed tokens.
pub const ACCESS_TOKEN: &str = "oauth.access_token";
pub const REFRESH_TOKEN: &str = "oauth.refresh_token";
/// A replaced token stays readable this long (for calls in flight), then the janitor destroys it.
pub const TOKEN_GRACE: Duration = Duration::from_secs(300);

/// Why a callback's state is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StateError {
    #[error("unknown state: start the authorization again")]
    Unknown,
    #[error("the state has expired: start the authorization again")]
    Expired,
    #[error("the state has already been used: start the authorization again")]
    Used,
}

/// A started authorization.
#[derive(Clone, Debug)]
pub struct StartedState {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// A state consumed by a callback: whose it was.
#[derive(Clone, Debug)]
pub struct ConsumedState {
    pub id: Uuid,
    pub tenant: TenantId,
    pub connection_id: Uuid,
    /// Who started the authorization (the actor of what the callback changes).
    pub started_by: String,
}

/// Non-secret facts of a connection's tokens.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Grant {
    pub connection_id: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
    pub scope: Option<String>,
    pub refreshable: bool,
    pub authorized_at: DateTime<Utc>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub refresh_count: i32,
}

const GRANT_COLS: &str = "connection_id, expires_at, scope, refreshable, authorized_at, refreshed_at, refresh_count";

/// Records a started authorization of `connection_id` and seals its code verifier.
pub async fn create_state(
    tx: &mut TenantTx,
    keyring: &Keyring,
    connection_id: Uuid,
    state_hash: &[u8; 32],
    verifier: &Secret<String>,
    ttl: Duration,
    by: &str,
) -> Result<StartedState, VaultStoreError> {
    let id = Uuid::now_v7();
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO qiconnect.oauth_states (id, tenant_id, connection_id, state_hash, expires_at, created_by)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6) RETURNING expires_at",
    )
    .bind(id)
    .bind(tx.tenant().as_uuid())
    .bind(connection_id)
    .bind(&state_hash[..])
    .bind(ttl.as_secs_f64())
    .bind(by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "oauth state"))?;
    let owner = SecretOwner { kind: STATE_OWNER_KIND, id, field: "code_verifier" };
    vault::put(tx, keyring, owner, verifier, Some(by)).await?;
    Ok(StartedState { id, expires_at })
}

/// Marks the state with this hash used, across tenants (the callback knows no tenant: the state
/// is what authenticates it). Unknown, expired and used states are refused; a refused state is
/// not consumed, and a consumed one can never be used again.
pub async fn consume_state(
    store: &Store,
    state_hash: &[u8; 32],
) -> Result<Result<ConsumedState, StateError>, StoreError> {
    let mut tx = store.system_tx().await?;
    let row: Option<(Uuid, Uuid, Uuid, bool, bool, String)> = sqlx::query_as(
        "SELECT id, tenant_id, connection_id, expires_at <= now(), used_at IS NOT NULL, created_by
         FROM qiconnect.oauth_states WHERE state_hash = $1 FOR UPDATE",
    )
    .bind(&state_hash[..])
    .fetch_optional(tx.conn())
    .await?;
    let Some((id, tenant, connection_id, expired, used, started_by)) = row else { return Ok(Err(StateError::Unknown)) };
    if used {
        return Ok(Err(StateError::Used));
    }
    if expired {
        return Ok(Err(StateError::Expired));
    }
    sqlx::query("UPDATE qiconnect.oauth_states SET used_at = now() WHERE id = $1").bind(id).execute(tx.conn()).await?;
    tx.commit().await?;
    Ok(Ok(ConsumedState { id, tenant: TenantId(tenant), connection_id, started_by }))
}

/// Decrypts a consumed state's code verifier (audited), then destroys it.
pub async fn take_verifier(
    store: &Store,
    keyring: &Keyring,
    state: &ConsumedState,
    access: &Access<'_>,
) -> Result<Plaintext, VaultStoreError> {
    let owner = SecretOwner { kind: STATE_OWNER_KIND, id: state.id, field: "code_verifier" };
    let access = Access { connection_id: Some(state.connection_id), ..*access };
    let value = vault::read(store, keyring, state.tenant, owner, None, &access).await?;
    let mut tx = store.tenant_tx(state.tenant).await?;
    vault::delete_owner(&mut tx, STATE_OWNER_KIND, state.id).await?;
    tx.commit().await?;
    Ok(value)
}

/// The connection's grant, if it has been authorized.
pub async fn grant(tx: &mut TenantTx, connection_id: Uuid) -> Result<Option<Grant>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {GRANT_COLS} FROM qiconnect.oauth_grants WHERE connection_id = $1"
    )))
    .bind(connection_id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The connection's grant, row-locked until the transaction ends: the per-connection refresh lock.
pub async fn lock_grant(tx: &mut TenantTx, connection_id: Uuid) -> Result<Option<Grant>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {GRANT_COLS} FROM qiconnect.oauth_grants WHERE connection_id = $1 FOR UPDATE"
    )))
    .bind(connection_id)
    .fetch_optional(tx.conn())
    .await?)
}

/// New tokens from the provider. `refresh_token: None` keeps the stored one (a provider that
/// does not rotate), or stores none after an authorization.
pub struct NewTokens<'a> {
    pub access_token: &'a Secret<String>,
    pub refresh_token: Option<&'a Secret<String>>,
    pub expires_in_secs: Option<i64>,
    pub scope: Option<&'a str>,
    /// True for a code exchange (an authorization), false for a refresh.
    pub authorized: bool,
}

async fn seal_token(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: Uuid,
    field: &str,
    value: &Secret<String>,
    by: &str,
) -> Result<(), VaultStoreError> {
    let owner = SecretOwner { kind: OWNER_KIND, id, field };
    match vault::replace(tx, keyring, owner, value, TOKEN_GRACE, Some(by)).await {
        Ok(_) => Ok(()),
        Err(VaultStoreError::NotFound(_)) => vault::put(tx, keyring, owner, value, Some(by)).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Seals the tokens under the connection and records their facts.
pub async fn store_tokens(
    tx: &mut TenantTx,
    keyring: &Keyring,
    connection_id: Uuid,
    t: NewTokens<'_>,
    by: &str,
) -> Result<Grant, VaultStoreError> {
    let access_field = connections_field(ACCESS_TOKEN);
    let refresh_field = connections_field(REFRESH_TOKEN);
    seal_token(tx, keyring, connection_id, &access_field, t.access_token, by).await?;
    if let Some(r) = t.refresh_token {
        seal_token(tx, keyring, connection_id, &refresh_field, r, by).await?;
    } else if t.authorized {
        sqlx::query("DELETE FROM qivault.secrets WHERE owner_kind = $1 AND owner_id = $2 AND field_name = $3")
            .bind(OWNER_KIND)
            .bind(connection_id)
            .bind(&refresh_field)
            .execute(tx.conn())
            .await?;
    }
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO qiconnect.oauth_grants AS g (tenant_id, connection_id, expires_at, scope, refreshable, authorized_at, updated_by)
         VALUES ($1, $2, now() + make_interval(secs => $3::int8), $4, $5, now(), $7)
         ON CONFLICT (connection_id) DO UPDATE SET
             expires_at = EXCLUDED.expires_at,
             scope = coalesce(EXCLUDED.scope, g.scope),
             refreshable = CASE WHEN $6 THEN EXCLUDED.refreshable ELSE g.refreshable OR EXCLUDED.refreshable END,
             authorized_at = CASE WHEN $6 THEN now() ELSE g.authorized_at END,
             refreshed_at = CASE WHEN $6 THEN NULL ELSE now() END,
             refresh_count = CASE WHEN $6 THEN 0 ELSE g.refresh_count + 1 END,
             updated_at = now(), updated_by = $7
         RETURNING {GRANT_COLS}"
    )))
    .bind(tx.tenant().as_uuid())
    .bind(connection_id)
    .bind(t.expires_in_secs)
    .bind(t.scope)
    .bind(t.refresh_token.is_some())
    .bind(t.authorized)
    .bind(by)
    .fetch_one(tx.conn())
    .await?;
    Ok(row)
}

fn connections_field(path: &str) -> String {
    spine_core::connector::vault_field(path)
}

/// Decrypts one of the connection's tokens ([`ACCESS_TOKEN`] or [`REFRESH_TOKEN`]), audited.
pub async fn read_token(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    connection_id: Uuid,
    path: &str,
    access: &Access<'_>,
) -> Result<Plaintext, VaultStoreError> {
    connections::read_secret(store, keyring, tenant, connection_id, path, access).await
}

/// Sets the connection's status (`active` or `needs_reauth`) with a reason; the status trigger
/// records the change in `qiconnect.connection_events` with `by` as the actor.
pub async fn set_status(
    tx: &mut TenantTx,
    connection_id: Uuid,
    status: &str,
    reason: Option<&str>,
    by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE qiconnect.connections SET status = $2, status_reason = left($3, 1000), is_active = true, updated_by = $4
         WHERE id = $1 AND status <> 'disabled'",
    )
    .bind(connection_id)
    .bind(status)
    .bind(reason)
    .bind(by)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Connections of every tenant whose access token expires within `window` and that can be
/// refreshed (for a proactive sweep): (tenant, connection).
pub async fn expiring(store: &Store, window: Duration) -> Result<Vec<(TenantId, Uuid)>, StoreError> {
    let mut tx = store.system_tx().await?;
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT g.tenant_id, g.connection_id FROM qiconnect.oauth_grants g
         JOIN qiconnect.connections c ON c.id = g.connection_id
         WHERE g.refreshable AND c.status IN ('active', 'degraded')
           AND g.expires_at < now() + make_interval(secs => $1)
         ORDER BY g.expires_at",
    )
    .bind(window.as_secs_f64())
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|(t, c)| (TenantId(t), c)).collect())
}

/// Decrypts one of the connection's secrets (a token, or `auth.client_secret`) inside `tx` (which holds the refresh lock), with its
/// access event in the same transaction: a refresh needs one database connection, not two, so
/// callers waiting for the lock cannot starve the holder of the pool.
pub async fn read_secret_in(
    tx: &mut TenantTx,
    keyring: &Keyring,
    connection_id: Uuid,
    path: &str,
    access: &Access<'_>,
) -> Result<Plaintext, VaultStoreError> {
    let field = connections_field(path);
    let owner = SecretOwner { kind: OWNER_KIND, id: connection_id, field: &field };
    vault::read_in(tx, keyring, owner, None, &Access { connection_id: Some(connection_id), ..*access }).await
}
