//! qiconnect.connections: tenants' instances of connector types (decision 0021). A config is
//! validated against its type's schema, its secret fields are sealed into `qivault.secrets`
//! (owner kind `connection`) and only the rest is stored; `secret_refs` maps each set secret's
//! dotted path to its vault row. Nothing here decrypts except [`read_secret`], which goes through
//! `vault::read` and so is audited.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use spine_core::connector::{ConnectorType, FieldError, get_path, get_path_mut, vault_field};
use spine_core::ids::TenantId;
use spine_core::vault::{Keyring, Plaintext};
use thiserror::Error;
use uuid::Uuid;

use crate::vault::{self, Access, SecretOwner, VaultStoreError};
use crate::{Store, StoreError, TenantTx};

/// `owner_kind` of connection secrets in `qivault.secrets`.
pub const OWNER_KIND: &str = "connection";
/// How long a replaced credential stays readable (for calls in flight) before it is destroyed.
pub const REPLACED_GRACE: Duration = Duration::from_secs(86_400);

#[derive(Debug, Error)]
pub enum ConnectionError {
    /// The config fails the type's schema; one entry per field.
    #[error("invalid config: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultStoreError),
}

impl From<sqlx::Error> for ConnectionError {
    fn from(e: sqlx::Error) -> Self {
        ConnectionError::Store(StoreError::Database(e))
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Connection {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub connector_type: String,
    pub name: String,
    /// Without secret fields.
    pub config: Value,
    /// Dotted path → vault row id.
    pub secret_refs: Value,
    pub is_active: bool,
    pub status: String,
    pub status_reason: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub metadata: Value,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    /// Failure policy (decision 0022): degraded after this many failed calls in a row…
    pub degrade_after_failures: i32,
    /// …and disabled once failing for this many seconds.
    pub disable_after_secs: i64,
    pub consecutive_failures: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error_class: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

impl Connection {
    /// The dotted paths of the secret fields that are set, sorted.
    pub fn secrets_set(&self) -> Vec<String> {
        self.secret_refs.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }
}

const COLS: &str = "id, tenant_id, connector_type, name, config, secret_refs, is_active, status, status_reason, \
                    last_used_at, metadata, notes, created_at, updated_at, created_by, updated_by, \
                    degrade_after_failures, extract(epoch FROM disable_after)::int8 AS disable_after_secs, \
                    consecutive_failures, failing_since, last_error_class, last_error_at";

/// A new connection; `config` still holds its secrets.
pub struct NewConnection<'a> {
    pub connector_type: ConnectorType,
    pub name: &'a str,
    pub config: Value,
    pub metadata: Value,
    pub notes: Option<&'a str>,
    pub created_by: &'a str,
}

/// Changes; `None` keeps a field. A new `config` replaces the old one whole, except that secret
/// fields it leaves out keep their stored values while the auth variant (`auth.type`) is unchanged.
#[derive(Default)]
pub struct ConnectionChanges<'a> {
    pub name: Option<&'a str>,
    pub config: Option<Value>,
    pub metadata: Option<Value>,
    pub notes: Option<&'a str>,
    /// Failure policy (decision 0022).
    pub degrade_after_failures: Option<i32>,
    pub disable_after_secs: Option<i64>,
}

/// Whether the transaction's tenant may use connections at all (`core.tenants.integrations_enabled`).
pub async fn integrations_enabled(tx: &mut TenantTx) -> Result<bool, StoreError> {
    Ok(crate::repos::tenants::current(tx).await?.integrations_enabled)
}

fn check_name(name: &str) -> Result<(), ConnectionError> {
    let n = name.chars().count();
    if n == 0 || n > 200 || name.trim() != name || name.chars().any(char::is_control) {
        return Err(ConnectionError::Invalid(vec![FieldError {
            field: "name".into(),
            message: "must be 1 to 200 characters without surrounding spaces or control characters".into(),
        }]));
    }
    Ok(())
}

fn check_policy(c: &ConnectionChanges<'_>) -> Result<(), ConnectionError> {
    let mut errors = Vec::new();
    if c.degrade_after_failures.is_some_and(|n| !(1..=1000).contains(&n)) {
        errors.push(FieldError { field: "degrade_after_failures".into(), message: "must be 1 to 1000".into() });
    }
    if c.disable_after_secs.is_some_and(|s| !(0..=31_536_000).contains(&s)) {
        errors
            .push(FieldError { field: "disable_after_secs".into(), message: "must be 0 to 31536000 (a year)".into() });
    }
    if errors.is_empty() { Ok(()) } else { Err(ConnectionError::Invalid(errors)) }
}

fn check_object(field: &str, v: &Value) -> Result<(), ConnectionError> {
    if v.is_object() {
        Ok(())
    } else {
        Err(ConnectionError::Invalid(vec![FieldError { field: field.into(), message: "must be an object".into() }]))
    }
}

fn on_write(e: sqlx::Error) -> ConnectionError {
    let single = matches!(&e, sqlx::Error::Database(db) if db.constraint() == Some("connections_single_instance"));
    let what = if single {
        "this connector type allows one connection per tenant, and the tenant has one"
    } else {
        "a connection with this name already exists"
    };
    ConnectionError::Store(StoreError::on_constraint(e, what))
}

async fn seal(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: Uuid,
    path: &str,
    value: &spine_core::secret::Secret<String>,
    replace: bool,
    by: &str,
) -> Result<Uuid, ConnectionError> {
    let field = vault_field(path);
    let owner = SecretOwner { kind: OWNER_KIND, id, field: &field };
    let meta = if replace {
        vault::replace(tx, keyring, owner, value, REPLACED_GRACE, Some(by)).await?
    } else {
        vault::put(tx, keyring, owner, value, Some(by)).await?
    };
    Ok(meta.id)
}

pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    new: NewConnection<'_>,
) -> Result<Connection, ConnectionError> {
    check_name(new.name)?;
    check_object("metadata", &new.metadata)?;
    let t = new.connector_type;
    let errors = t.validate(&new.config);
    if !errors.is_empty() {
        return Err(ConnectionError::Invalid(errors));
    }
    let mut config = new.config;
    let secrets = t.split_secrets(&mut config);
    let id = Uuid::now_v7();
    // An OAuth2 connection cannot call anything until someone authorizes it (decision 0026).
    let (status, reason) = if get_path(&config, "auth.type").and_then(Value::as_str) == Some("oauth2") {
        (
            "needs_reauth",
            Some(format!("not authorized yet: start the OAuth2 authorization (POST /v1/connections/{id}/oauth/start)")),
        )
    } else {
        ("active", None)
    };
    let mut refs = Map::new();
    for (path, value) in &secrets {
        let sid = seal(tx, keyring, id, path, value, false, new.created_by).await?;
        refs.insert((*path).to_owned(), Value::String(sid.to_string()));
    }
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO qiconnect.connections (id, tenant_id, connector_type, name, config, secret_refs, metadata, notes, created_by,
                                            updated_by, status, status_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) RETURNING {COLS}"
    )))
    .bind(id)
    .bind(tx.tenant().as_uuid())
    .bind(t.name())
    .bind(new.name)
    .bind(&config)
    .bind(Value::Object(refs))
    .bind(&new.metadata)
    .bind(new.notes)
    .bind(new.created_by)
    .bind(status)
    .bind(reason)
    .fetch_one(tx.conn())
    .await
    .map_err(on_write)?;
    Ok(row)
}

pub async fn list(tx: &mut TenantTx) -> Result<Vec<Connection>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM qiconnect.connections ORDER BY name, id")))
        .fetch_all(tx.conn())
        .await?)
}

/// One connection of the transaction's tenant; `NotFound` for another tenant's (RLS hides it).
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Connection, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM qiconnect.connections WHERE id = $1")))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

/// By id or by name.
pub async fn find(tx: &mut TenantTx, id_or_name: &str) -> Result<Connection, StoreError> {
    let id = Uuid::parse_str(id_or_name).ok();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM qiconnect.connections WHERE id = $1 OR name = $2 ORDER BY (id = $1) DESC NULLS LAST LIMIT 1"
    )))
    .bind(id)
    .bind(id_or_name)
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)
}

/// One connection, row-locked until the transaction ends (to compare before a change).
pub async fn lock(tx: &mut TenantTx, id: Uuid) -> Result<Connection, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM qiconnect.connections WHERE id = $1 FOR UPDATE")))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

/// Stands in, during validation, for a secret that is set and not being replaced.
const KEPT: &str = "(kept: a stored secret of at least sixteen chars)";

pub async fn update(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: Uuid,
    c: ConnectionChanges<'_>,
    by: &str,
) -> Result<Connection, ConnectionError> {
    let current = lock(tx, id).await?;
    check_policy(&c)?;
    if let Some(n) = c.name {
        check_name(n)?;
    }
    if let Some(m) = &c.metadata {
        check_object("metadata", m)?;
    }
    let mut refs = current.secret_refs.as_object().cloned().unwrap_or_default();
    let config = match c.config {
        None => None,
        Some(mut candidate) => {
            let t = ConnectorType::from_name(&current.connector_type)
                .ok_or_else(|| StoreError::Invalid(format!("unknown connector type {:?}", current.connector_type)))?;
            let mut kept = BTreeSet::new();
            for path in t.secret_fields() {
                if !refs.contains_key(*path) || get_path(&candidate, path).is_some() {
                    continue;
                }
                let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
                let same_variant = get_path(&candidate, parent).map(|p| p.get("type"))
                    == get_path(&current.config, parent).map(|p| p.get("type"));
                if let Some(Value::Object(obj)) = get_path_mut(&mut candidate, parent)
                    && same_variant
                {
                    obj.insert(leaf.to_owned(), Value::String(KEPT.to_owned()));
                    kept.insert(*path);
                }
            }
            let errors = t.validate(&candidate);
            if !errors.is_empty() {
                return Err(ConnectionError::Invalid(errors));
            }
            let secrets = t.split_secrets(&mut candidate);
            let mut given = BTreeSet::new();
            for (path, value) in &secrets {
                if kept.contains(path) {
                    continue;
                }
                given.insert(*path);
                let sid = seal(tx, keyring, id, path, value, refs.contains_key(*path), by).await?;
                refs.insert((*path).to_owned(), Value::String(sid.to_string()));
            }
            // Secrets of fields the new config no longer has (another auth variant) go.
            let gone: Vec<String> =
                refs.keys().filter(|p| !kept.contains(p.as_str()) && !given.contains(p.as_str())).cloned().collect();
            for path in gone {
                sqlx::query("DELETE FROM qivault.secrets WHERE owner_kind = $1 AND owner_id = $2 AND field_name = $3")
                    .bind(OWNER_KIND)
                    .bind(id)
                    .bind(vault_field(&path))
                    .execute(tx.conn())
                    .await?;
                refs.remove(&path);
            }
            Some(candidate)
        }
    };
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE qiconnect.connections SET name = coalesce($2, name), config = coalesce($3, config), secret_refs = $4,
                metadata = coalesce($5, metadata), notes = coalesce($6, notes), updated_by = $7,
                degrade_after_failures = coalesce($8, degrade_after_failures),
                disable_after = coalesce(make_interval(secs => $9::int8), disable_after)
         WHERE id = $1 RETURNING {COLS}"
    )))
    .bind(id)
    .bind(c.name)
    .bind(config)
    .bind(Value::Object(refs))
    .bind(c.metadata)
    .bind(c.notes)
    .bind(by)
    .bind(c.degrade_after_failures)
    .bind(c.disable_after_secs)
    .fetch_one(tx.conn())
    .await
    .map_err(on_write)?;
    Ok(row)
}

/// Disables (with a reason) or enables a connection.
pub async fn set_enabled(
    tx: &mut TenantTx,
    id: Uuid,
    enabled: bool,
    reason: Option<&str>,
    by: &str,
) -> Result<Connection, StoreError> {
    let (status, reason) =
        if enabled { ("active", None) } else { ("disabled", reason.or(Some("disabled by a person"))) };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE qiconnect.connections SET is_active = $2, status = $3, status_reason = $4, updated_by = $5
         WHERE id = $1 RETURNING {COLS}"
    )))
    .bind(id)
    .bind(enabled)
    .bind(status)
    .bind(reason)
    .bind(by)
    .fetch_optional(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "connection"))?
    .ok_or(StoreError::NotFound)
}

/// Deletes a connection and every version of its secrets.
pub async fn delete(tx: &mut TenantTx, id: Uuid) -> Result<(), ConnectionError> {
    lock(tx, id).await?;
    vault::delete_owner(tx, OWNER_KIND, id).await?;
    sqlx::query("DELETE FROM qiconnect.connections WHERE id = $1").bind(id).execute(tx.conn()).await?;
    Ok(())
}

/// Decrypts one secret field of a connection for a stated purpose; the access event (with the
/// connection id) commits before the value is returned.
pub async fn read_secret(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    id: Uuid,
    path: &str,
    access: &Access<'_>,
) -> Result<Plaintext, VaultStoreError> {
    let field = vault_field(path);
    let access = Access { connection_id: Some(id), ..*access };
    vault::read(store, keyring, tenant, SecretOwner { kind: OWNER_KIND, id, field: &field }, None, &access).await
}

/// The rows of `qiconnect.connector_types` as JSON objects (to compare with the code's registry).
pub async fn connector_type_rows(tx: &mut TenantTx) -> Result<Vec<Value>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT to_jsonb(t) - 'created_at' - 'updated_at' FROM qiconnect.connector_types t ORDER BY name",
    )
    .fetch_all(tx.conn())
    .await?)
}

/// One status change of a connection (`qiconnect.connection_events`).
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct ConnectionEvent {
    pub id: Uuid,
    pub from_status: String,
    pub to_status: String,
    pub reason: Option<String>,
    /// Who, as kind:id (`user:…`, `api_key:…`, `cli`), or `job:<id>` when the runtime changed it.
    pub actor: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The connection's status changes, newest first.
pub async fn events(tx: &mut TenantTx, id: Uuid, limit: i64) -> Result<Vec<ConnectionEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, from_status, to_status, reason, actor, created_at FROM qiconnect.connection_events
         WHERE connection_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}
