//! A connection's full config: the stored (non-secret) config with each set secret decrypted
//! (through `connections::read_secret`, which audits the access with its purpose) and put back
//! at its dotted path. It lives only for the call that needs it: its secret strings are zeroized
//! when it is dropped, and it never shows itself in Debug output.

use std::fmt;

use serde_json::Value;
use spine_core::connector::{ConnectorType, FieldError, get_path, get_path_mut};
use spine_core::ids::TenantId;
use spine_core::vault::Keyring;
use spine_store::repos::connections::{self, Connection};
use spine_store::vault::{Access, VaultStoreError};
use spine_store::{Store, StoreError};
use thiserror::Error;
use zeroize::Zeroize;

use super::oauth;

#[derive(Debug, Error)]
pub enum ResolveError {
    #[error("unknown connector type {0:?}")]
    UnknownType(String),
    /// The candidate config fails the type's schema.
    #[error("invalid config: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// A stored secret is not UTF-8 (every secret field is a string).
    #[error("secret {0} is not UTF-8")]
    NotUtf8(String),
    #[error(transparent)]
    Vault(#[from] VaultStoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A config with its secrets in place. Zeroizes them on drop; Debug shows only the type.
pub struct ResolvedConfig {
    connector_type: ConnectorType,
    value: Value,
}

impl ResolvedConfig {
    /// From a complete config (with its secret fields), e.g. a candidate read from a request.
    pub fn new(connector_type: ConnectorType, value: Value) -> Self {
        Self { connector_type, value }
    }

    pub fn connector_type(&self) -> ConnectorType {
        self.connector_type
    }

    /// The config, secrets included: read it only where the call is made.
    pub fn expose(&self) -> &Value {
        &self.value
    }

    /// The string at a dotted path.
    pub fn str(&self, path: &str) -> Option<&str> {
        get_path(&self.value, path).and_then(Value::as_str)
    }
}

impl Drop for ResolvedConfig {
    fn drop(&mut self) {
        for path in self.connector_type.secret_fields().iter().chain(&[OAUTH_ACCESS_TOKEN]) {
            if let Some(Value::String(s)) = get_path_mut(&mut self.value, path) {
                s.zeroize();
            }
        }
    }
}

impl fmt::Debug for ResolvedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResolvedConfig({}, [redacted])", self.connector_type.name())
    }
}

/// Where [`resolve`] puts an OAuth2 connection's access token (never stored there).
const OAUTH_ACCESS_TOKEN: &str = "auth.access_token";

/// For an `oauth2` connection, a valid access token (refreshed if due) at `auth.access_token`;
/// when none can be had, `auth.oauth_problem` says why (the check's diagnosis shows it) and a
/// refused refresh has set the connection to `needs_reauth`. Database failures are errors.
async fn fill_oauth(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    config: &mut ResolvedConfig,
    access: &Access<'_>,
) -> Result<(), ResolveError> {
    if config.str("auth.type") != Some("oauth2") {
        return Ok(());
    }
    let (key, value) = match oauth::access_token(store, keyring, tenant, c.id, access).await {
        Ok(token) => ("access_token", token.as_str().to_owned()),
        Err(oauth::OAuthError::Store(e)) => return Err(e.into()),
        Err(oauth::OAuthError::Vault(VaultStoreError::Store(e))) => return Err(e.into()),
        Err(e) => ("oauth_problem", format!("oauth2: {e}")),
    };
    if let Some(Value::Object(auth)) = get_path_mut(&mut config.value, "auth") {
        auth.insert(key.to_owned(), Value::String(value));
    }
    Ok(())
}

fn connector_type(c: &Connection) -> Result<ConnectorType, ResolveError> {
    ConnectorType::from_name(&c.connector_type).ok_or_else(|| ResolveError::UnknownType(c.connector_type.clone()))
}

/// Decrypts the secret at `path` of a stored connection into `config`.
async fn fill(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    path: &str,
    config: &mut ResolvedConfig,
    access: &Access<'_>,
) -> Result<(), ResolveError> {
    let plain = connections::read_secret(store, keyring, tenant, c.id, path, access).await?;
    let text = String::from_utf8(plain.expose().to_vec()).map_err(|e| {
        e.into_bytes().zeroize();
        ResolveError::NotUtf8(path.to_owned())
    })?;
    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let holder = if parent.is_empty() { Some(&mut config.value) } else { get_path_mut(&mut config.value, parent) };
    match holder {
        Some(Value::Object(obj)) => {
            obj.insert(leaf.to_owned(), Value::String(text));
        }
        _ => {
            let mut text = text;
            text.zeroize();
        }
    }
    Ok(())
}

/// The stored connection's full config, every set secret decrypted (each decryption audited).
pub async fn resolve(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    c: &Connection,
    access: &Access<'_>,
) -> Result<ResolvedConfig, ResolveError> {
    let mut config = ResolvedConfig::new(connector_type(c)?, c.config.clone());
    for path in c.secrets_set() {
        fill(store, keyring, tenant, c, &path, &mut config, access).await?;
    }
    fill_oauth(store, keyring, tenant, c, &mut config, access).await?;
    Ok(config)
}

/// Whether a new config gives any secret field (a credential rotation).
pub fn gives_secrets(t: ConnectorType, candidate: &Value) -> bool {
    t.secret_fields().iter().any(|p| get_path(candidate, p).is_some())
}

/// The config an update would store, with its secrets: `candidate` (new values) plus the stored
/// secrets it leaves out and keeps (same rule as `connections::update`: a set secret is kept
/// while its auth variant is unchanged). Validated against the type's schema.
pub async fn resolve_candidate(
    store: &Store,
    keyring: &Keyring,
    tenant: TenantId,
    current: &Connection,
    candidate: Value,
    access: &Access<'_>,
) -> Result<ResolvedConfig, ResolveError> {
    let t = connector_type(current)?;
    let mut config = ResolvedConfig::new(t, candidate);
    for path in current.secrets_set() {
        if get_path(&config.value, &path).is_some() {
            continue;
        }
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        let variant = |v: &Value| get_path(v, parent).map(|p| p.get("type").cloned());
        if variant(&config.value) == variant(&current.config) && variant(&config.value).is_some() {
            fill(store, keyring, tenant, current, &path, &mut config, access).await?;
        }
    }
    let errors = t.validate(&config.value);
    if !errors.is_empty() {
        return Err(ResolveError::Invalid(errors));
    }
    fill_oauth(store, keyring, tenant, current, &mut config, access).await?;
    Ok(config)
}
