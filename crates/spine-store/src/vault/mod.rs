//! The vault's tables (decision 0014): secrets sealed by `spine_core::vault`, an access event for
//! every decryption, master-key metadata and resumable rotation. Key material never reaches the
//! database; decrypted values exist only as [`Plaintext`] (redacted, wiped on drop).
//!
//! Writes take the caller's [`TenantTx`], so a secret commits with whatever owns it. [`read`]
//! runs its own tenant transaction and commits the access event before it hands the value out.

mod keys;
mod rotate;

use std::time::Duration;

use spine_core::ids::TenantId;
use spine_core::secret::Secret;
use spine_core::vault::{self as crypto, Keyring, Plaintext, Sealed, SecretBinding, VaultError};
use sqlx::Row;
use sqlx::postgres::PgRow;
use thiserror::Error;
use uuid::Uuid;

use crate::{Store, StoreError, TenantTx};

pub use keys::{KeyStatus, KeySync, VaultStatus, retire, status, sync_keys};
pub use rotate::{RotateOptions, RotationProgress, rotate};

#[derive(Debug, Error)]
pub enum VaultStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] VaultError),
    /// Decrypting one stored secret failed (tampered, moved, or sealed with another key).
    #[error("secret {id}: {source}")]
    Secret { id: Uuid, source: VaultError },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is refused as it stands (retiring a key in use, a key that does not match).
    #[error("refused: {0}")]
    Refused(String),
}

impl From<sqlx::Error> for VaultStoreError {
    fn from(e: sqlx::Error) -> Self {
        VaultStoreError::Store(StoreError::Database(e))
    }
}

/// Which secret: the owning row (e.g. a connection) and the credential's field name.
#[derive(Clone, Copy, Debug)]
pub struct SecretOwner<'a> {
    pub kind: &'a str,
    pub id: Uuid,
    pub field: &'a str,
}

/// Why a secret is decrypted and for whom; recorded in `qivault.access_events`.
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    pub purpose: &'a str,
    /// `kind:id` of who asks (worker, user, service).
    pub actor: &'a str,
    pub connection_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub request_id: Option<&'a str>,
}

/// A secret's row without its value.
#[derive(Clone, Debug)]
pub struct SecretMeta {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub owner_kind: String,
    pub owner_id: Uuid,
    pub field_name: String,
    pub version: i32,
    pub key_id: String,
}

pub(crate) struct StoredSecret {
    pub meta: SecretMeta,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub(crate) const SECRET_COLUMNS: &str =
    "id, tenant_id, owner_kind, owner_id, field_name, version, key_id, nonce, ciphertext";

impl StoredSecret {
    pub(crate) fn from_row(r: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            meta: SecretMeta {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                owner_kind: r.try_get("owner_kind")?,
                owner_id: r.try_get("owner_id")?,
                field_name: r.try_get("field_name")?,
                version: r.try_get("version")?,
                key_id: r.try_get("key_id")?,
            },
            nonce: r.try_get("nonce")?,
            ciphertext: r.try_get("ciphertext")?,
        })
    }

    pub(crate) fn open(self, keyring: &Keyring) -> Result<Plaintext, VaultStoreError> {
        let id = self.meta.id;
        let sealed = Sealed::from_parts(self.meta.key_id.clone(), &self.nonce, self.ciphertext)
            .map_err(|source| VaultStoreError::Secret { id, source })?;
        crypto::open(keyring, &sealed, &binding(&self.meta).to_aad())
            .map_err(|source| VaultStoreError::Secret { id, source })
    }
}

pub(crate) fn binding(m: &SecretMeta) -> SecretBinding<'_> {
    SecretBinding {
        tenant_id: m.tenant_id,
        secret_id: m.id,
        owner_kind: &m.owner_kind,
        owner_id: m.owner_id,
        field_name: &m.field_name,
        version: m.version,
    }
}

async fn insert(
    tx: &mut TenantTx,
    keyring: &Keyring,
    owner: SecretOwner<'_>,
    version: i32,
    value: &[u8],
    created_by: Option<&str>,
) -> Result<SecretMeta, VaultStoreError> {
    let meta = SecretMeta {
        id: Uuid::now_v7(),
        tenant_id: tx.tenant().as_uuid(),
        owner_kind: owner.kind.to_owned(),
        owner_id: owner.id,
        field_name: owner.field.to_owned(),
        version,
        key_id: keyring.active_id().to_owned(),
    };
    let sealed = crypto::seal(keyring, value, &binding(&meta).to_aad())?;
    sqlx::query(
        "INSERT INTO qivault.secrets (id, tenant_id, owner_kind, owner_id, field_name, version, key_id, nonce, ciphertext, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(meta.id)
    .bind(meta.tenant_id)
    .bind(&meta.owner_kind)
    .bind(meta.owner_id)
    .bind(&meta.field_name)
    .bind(meta.version)
    .bind(&sealed.key_id)
    .bind(&sealed.nonce[..])
    .bind(&sealed.ciphertext)
    .bind(created_by)
    .execute(tx.conn())
    .await
    .map_err(|e| match StoreError::on_constraint(e, "a current secret for this owner and field already exists") {
        StoreError::Conflict(w) => VaultStoreError::Conflict(w),
        other => VaultStoreError::Store(other),
    })?;
    Ok(meta)
}

/// Stores a new secret (version 1) sealed under the active key. A current secret for the same
/// owner and field is a conflict: use [`replace`].
pub async fn put<T: AsRef<[u8]>>(
    tx: &mut TenantTx,
    keyring: &Keyring,
    owner: SecretOwner<'_>,
    value: &Secret<T>,
    created_by: Option<&str>,
) -> Result<SecretMeta, VaultStoreError> {
    insert(tx, keyring, owner, 1, value.expose().as_ref(), created_by).await
}

/// Stores many new secrets (version 1) in one statement (imports, benchmarks).
pub async fn put_many<T: AsRef<[u8]>>(
    tx: &mut TenantTx,
    keyring: &Keyring,
    items: &[(SecretOwner<'_>, Secret<T>)],
) -> Result<u64, VaultStoreError> {
    let tenant_id = tx.tenant().as_uuid();
    let n = items.len();
    let (mut ids, mut kinds, mut owners, mut fields) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut nonces, mut cts) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (owner, value) in items {
        let meta = SecretMeta {
            id: Uuid::now_v7(),
            tenant_id,
            owner_kind: owner.kind.to_owned(),
            owner_id: owner.id,
            field_name: owner.field.to_owned(),
            version: 1,
            key_id: keyring.active_id().to_owned(),
        };
        let sealed = crypto::seal(keyring, value.expose().as_ref(), &binding(&meta).to_aad())?;
        ids.push(meta.id);
        kinds.push(meta.owner_kind);
        owners.push(meta.owner_id);
        fields.push(meta.field_name);
        nonces.push(sealed.nonce.to_vec());
        cts.push(sealed.ciphertext);
    }
    let done = sqlx::query(
        "INSERT INTO qivault.secrets (id, tenant_id, owner_kind, owner_id, field_name, version, key_id, nonce, ciphertext)
         SELECT u.id, $1, u.kind, u.owner, u.field, 1, $2, u.nonce, u.ct
         FROM unnest($3::uuid[], $4::text[], $5::uuid[], $6::text[], $7::bytea[], $8::bytea[]) AS u(id, kind, owner, field, nonce, ct)",
    )
    .bind(tenant_id)
    .bind(keyring.active_id())
    .bind(&ids)
    .bind(&kinds)
    .bind(&owners)
    .bind(&fields)
    .bind(&nonces)
    .bind(&cts)
    .execute(tx.conn())
    .await
    .map_err(|e| match StoreError::on_constraint(e, "a current secret for one of these owners and fields already exists") {
        StoreError::Conflict(w) => VaultStoreError::Conflict(w),
        other => VaultStoreError::Store(other),
    })?;
    Ok(done.rows_affected())
}

/// Replaces the current value with a new version; the old version stays readable (by version)
/// for `grace`, then [`destroy_expired`] deletes it.
pub async fn replace<T: AsRef<[u8]>>(
    tx: &mut TenantTx,
    keyring: &Keyring,
    owner: SecretOwner<'_>,
    value: &Secret<T>,
    grace: Duration,
    created_by: Option<&str>,
) -> Result<SecretMeta, VaultStoreError> {
    let row = sqlx::query(
        "UPDATE qivault.secrets SET replaced_at = now(), destroy_after = now() + make_interval(secs => $4)
         WHERE owner_kind = $1 AND owner_id = $2 AND field_name = $3 AND replaced_at IS NULL
         RETURNING version",
    )
    .bind(owner.kind)
    .bind(owner.id)
    .bind(owner.field)
    .bind(grace.as_secs_f64())
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| {
        VaultStoreError::NotFound(format!("no {} secret {} of {} {}", owner.field, "to replace", owner.kind, owner.id))
    })?;
    let version: i32 = row.try_get("version")?;
    insert(tx, keyring, owner, version + 1, value.expose().as_ref(), created_by).await
}

/// Decrypts a secret (the current version, or `version`) for a stated purpose. The access event
/// is committed before the value is returned; a failed decryption returns an error and no value.
pub async fn read(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    owner: SecretOwner<'_>,
    version: Option<i32>,
    access: &Access<'_>,
) -> Result<Plaintext, VaultStoreError> {
    let mut tx = store.tenant_tx(tenant).await?;
    let value = read_in(&mut tx, keyring, owner, version, access).await?;
    tx.commit().await?;
    Ok(value)
}

/// [`read`] inside the caller's transaction: the access event commits with it (for a caller that
/// holds a lock in that transaction and must not need a second connection).
pub async fn read_in(
    tx: &mut TenantTx,
    keyring: &Keyring,
    owner: SecretOwner<'_>,
    version: Option<i32>,
    access: &Access<'_>,
) -> Result<Plaintext, VaultStoreError> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM qivault.secrets
         WHERE owner_kind = $1 AND owner_id = $2 AND field_name = $3
           AND (CASE WHEN $4::int IS NULL THEN replaced_at IS NULL ELSE version = $4 END)"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner.kind)
        .bind(owner.id)
        .bind(owner.field)
        .bind(version)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| {
            VaultStoreError::NotFound(format!("no {} secret of {} {}", owner.field, owner.kind, owner.id))
        })?;
    let stored = StoredSecret::from_row(&row)?;
    let meta = stored.meta.clone();
    let value = stored.open(keyring)?;
    sqlx::query(
        "INSERT INTO qivault.access_events (tenant_id, secret_id, owner_kind, owner_id, field_name, version, purpose, actor, connection_id, job_id, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(meta.tenant_id)
    .bind(meta.id)
    .bind(&meta.owner_kind)
    .bind(meta.owner_id)
    .bind(&meta.field_name)
    .bind(meta.version)
    .bind(access.purpose)
    .bind(access.actor)
    .bind(access.connection_id)
    .bind(access.job_id)
    .bind(access.request_id)
    .execute(tx.conn())
    .await
    .map_err(|e| VaultStoreError::Store(StoreError::on_constraint(e, "access event")))?;
    Ok(value)
}

/// Every version of a tenant's secrets for one owner (no values), oldest first.
pub async fn list(tx: &mut TenantTx, owner_kind: &str, owner_id: Uuid) -> Result<Vec<SecretMeta>, VaultStoreError> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM qivault.secrets WHERE owner_kind = $1 AND owner_id = $2 ORDER BY field_name, version"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner_kind).bind(owner_id).fetch_all(tx.conn()).await?;
    rows.iter().map(|r| Ok(StoredSecret::from_row(r)?.meta)).collect()
}

/// Deletes every version of an owner's secrets (e.g. when the connection is deleted).
pub async fn delete_owner(tx: &mut TenantTx, owner_kind: &str, owner_id: Uuid) -> Result<u64, VaultStoreError> {
    let done = sqlx::query("DELETE FROM qivault.secrets WHERE owner_kind = $1 AND owner_id = $2")
        .bind(owner_kind)
        .bind(owner_id)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}

/// Deletes replaced versions whose grace period is over, across tenants (a janitor task).
pub async fn destroy_expired(store: &Store) -> Result<u64, VaultStoreError> {
    let mut tx = store.system_tx().await?;
    let done = sqlx::query("DELETE FROM qivault.secrets WHERE destroy_after <= now()").execute(tx.conn()).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
