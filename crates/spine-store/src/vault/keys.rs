//! Master-key metadata in `qivault.master_keys`: registering the configured keys, the status per
//! key, retirement. Runs with the owner's rights (platform administration).

use chrono::{DateTime, Utc};
use spine_core::vault::Keyring;
use sqlx::Row;
use uuid::Uuid;

use super::VaultStoreError;
use crate::Store;

/// What [`sync_keys`] found.
#[derive(Clone, Debug, Default)]
pub struct KeySync {
    /// Configured keys the database did not know yet.
    pub registered: Vec<String>,
    /// Keys the database knows, not retired, that this keyring lacks (their secrets cannot be
    /// opened here).
    pub not_configured: Vec<String>,
}

/// Records every configured key (id, fingerprint) and makes the keyring's active key the active
/// one. Refused when a configured key's fingerprint differs from the recorded one (a different key
/// under a known id) or when the active key is retired.
pub async fn sync_keys(store: &Store, keyring: &Keyring) -> Result<KeySync, VaultStoreError> {
    let mut tx = store.system_tx().await?;
    let mut out = KeySync::default();
    for key in keyring.keys() {
        let row = sqlx::query(
            "INSERT INTO qivault.master_keys (key_id, key_fingerprint) VALUES ($1, $2)
             ON CONFLICT (key_id) DO UPDATE SET key_id = EXCLUDED.key_id
             RETURNING key_fingerprint, state, (xmax = 0) AS inserted",
        )
        .bind(key.id())
        .bind(key.fingerprint())
        .fetch_one(tx.conn())
        .await?;
        let fingerprint: String = row.try_get("key_fingerprint")?;
        if fingerprint != key.fingerprint() {
            return Err(VaultStoreError::Refused(format!(
                "the configured master key `{}` is not the key `{}` the database knows (fingerprint {} vs {fingerprint}); \
                 secrets sealed with it would not open with the other",
                key.id(),
                key.id(),
                key.fingerprint()
            )));
        }
        let state: String = row.try_get("state")?;
        if key.id() == keyring.active_id() && state == "retired" {
            return Err(VaultStoreError::Refused(format!(
                "the active key `{}` is retired; configure a new key as vault.active_key",
                key.id()
            )));
        }
        if row.try_get::<bool, _>("inserted")? {
            out.registered.push(key.id().to_owned());
        }
    }
    sqlx::query("UPDATE qivault.master_keys SET state = 'decrypt_only' WHERE state = 'active' AND key_id <> $1")
        .bind(keyring.active_id())
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "UPDATE qivault.master_keys SET state = 'active', activated_at = now() WHERE key_id = $1 AND state <> 'active'",
    )
    .bind(keyring.active_id())
    .execute(tx.conn())
    .await?;
    let known: Vec<String> =
        sqlx::query_scalar("SELECT key_id FROM qivault.master_keys WHERE state <> 'retired' ORDER BY key_id")
            .fetch_all(tx.conn())
            .await?;
    out.not_configured = known.into_iter().filter(|k| !keyring.contains(k)).collect();
    tx.commit().await?;
    Ok(out)
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct KeyStatus {
    pub key_id: String,
    pub state: String,
    pub fingerprint: String,
    /// Secrets (every version) sealed with the key.
    pub secrets: i64,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct RotationStatus {
    pub id: Uuid,
    pub target_key_id: String,
    pub state: String,
    pub secrets_total: i64,
    pub secrets_rotated: i64,
    pub batches: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct VaultStatus {
    pub keys: Vec<KeyStatus>,
    /// The running rotation, else the latest one.
    pub rotation: Option<RotationStatus>,
}

/// Secrets per key id, the keys' states and the latest rotation. Reads only.
pub async fn status(store: &Store) -> Result<VaultStatus, VaultStoreError> {
    let mut tx = store.system_tx().await?;
    let keys: Vec<KeyStatus> = sqlx::query_as(
        "SELECT m.key_id, m.state, m.key_fingerprint AS fingerprint, m.activated_at, m.retired_at,
                coalesce(c.n, 0) AS secrets
         FROM qivault.master_keys m
         LEFT JOIN (SELECT key_id, count(*) AS n FROM qivault.secrets GROUP BY key_id) c USING (key_id)
         ORDER BY m.state = 'active' DESC, m.state = 'retired', m.key_id",
    )
    .fetch_all(tx.conn())
    .await?;
    let rotation: Option<RotationStatus> = sqlx::query_as(
        "SELECT id, target_key_id, state, secrets_total, secrets_rotated, batches, started_at, finished_at
         FROM qivault.rotations ORDER BY state = 'running' DESC, started_at DESC LIMIT 1",
    )
    .fetch_optional(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(VaultStatus { keys, rotation })
}

/// Marks a key retired. Refused for the active key and while any secret (any version) uses it.
/// The key row is locked first; writers lock it FOR KEY SHARE (the secrets trigger), so a secret
/// sealed with it either commits before the count below or fails afterwards.
pub async fn retire(store: &Store, key_id: &str) -> Result<(), VaultStoreError> {
    let mut tx = store.system_tx().await?;
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM qivault.master_keys WHERE key_id = $1 FOR UPDATE")
            .bind(key_id)
            .fetch_optional(tx.conn())
            .await?;
    match state.as_deref() {
        None => return Err(VaultStoreError::NotFound(format!("no master key `{key_id}` in the database"))),
        Some("retired") => return Ok(()),
        Some("active") => {
            return Err(VaultStoreError::Refused(format!(
                "`{key_id}` is the active key; make another key active and rotate first"
            )));
        }
        Some(_) => {}
    }
    let in_use: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.secrets WHERE key_id = $1")
        .bind(key_id)
        .fetch_one(tx.conn())
        .await?;
    if in_use > 0 {
        return Err(VaultStoreError::Refused(format!(
            "{in_use} secret(s) are still sealed with `{key_id}`; run `spine keys rotate` first"
        )));
    }
    sqlx::query("UPDATE qivault.master_keys SET state = 'retired', retired_at = now() WHERE key_id = $1")
        .bind(key_id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}
