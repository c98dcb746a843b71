//! `spine keys …`: the vault's master keys (decision 0014). Keys come from `vault.master_keys` and
//! the key file, never from the database; `spine up` creates `data_dir/vault.keys` with a fresh
//! key when none is configured.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;
use spine_core::vault::{Keyring, MasterKey};
use spine_store::Store;
use spine_store::vault::{self, RotateOptions, VaultStoreError};
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::error::CliError;
use crate::output;

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Secrets per master key, the keys' states, and the latest rotation.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every secret not under the active key, in batches (resumable; reads continue).
    Rotate {
        /// Secrets per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
        /// Stop after this many batches (a later run resumes).
        #[arg(long)]
        max_batches: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Retire a key no secret uses any more.
    Retire {
        key_id: String,
        #[arg(long)]
        json: bool,
    },
}

pub const KEY_FILE_NAME: &str = "vault.keys";

fn key_file(settings: &Settings) -> (PathBuf, bool) {
    match &settings.vault.key_file {
        Some(p) => (p.clone(), true),
        None => (settings.data_dir.join(KEY_FILE_NAME), false),
    }
}

fn read_key_file(path: &Path) -> Result<Vec<MasterKey>, CliError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| CliError::config(format!("vault key file {}: {e}", path.display())))?,
    );
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the vault key file is readable by others; chmod 600 it");
    }
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(
            MasterKey::parse(line)
                .map_err(|e| CliError::config(format!("vault key file {} line {}: {e}", path.display(), n + 1)))?,
        );
    }
    Ok(keys)
}

/// The configured keyring: `vault.master_keys`, then the key file. `None` when no key is
/// configured anywhere. The active key is `vault.active_key`, else the last key listed.
pub fn load_keyring(settings: &Settings) -> Result<Option<Keyring>, CliError> {
    let mut keys = Vec::new();
    for (i, k) in settings.vault.master_keys.iter().enumerate() {
        keys.push(MasterKey::parse(k.expose()).map_err(|e| CliError::config(format!("vault.master_keys[{i}]: {e}")))?);
    }
    let (path, explicit) = key_file(settings);
    if explicit || path.exists() {
        keys.extend(read_key_file(&path)?);
    }
    let Some(last) = keys.last().map(|k| k.id().to_owned()) else {
        return Ok(None);
    };
    let active = settings.vault.active_key.clone().unwrap_or(last);
    Keyring::new(keys, &active)
        .map(Some)
        .map_err(|e| CliError::config(e.to_string()).hint("see vault.* in the configuration table in README.md"))
}

fn require_keyring(settings: &Settings) -> Result<Keyring, CliError> {
    load_keyring(settings)?.ok_or_else(|| {
        CliError::config("no vault master key is configured")
            .hint("set vault.master_keys or vault.key_file, or start `spine up` once to create data_dir/vault.keys")
    })
}

/// For `spine up`: the keyring, creating `data_dir/vault.keys` (mode 0600) with a new key when
/// none is configured, then registered in the database.
pub async fn keyring_for_up(settings: &Settings, store: &Store) -> Result<Keyring, CliError> {
    let keyring = match load_keyring(settings)? {
        Some(k) => k,
        None => {
            let (path, _) = key_file(settings);
            let key = MasterKey::generate("k1").map_err(|e| CliError::failed(e.to_string()))?;
            write_new_key_file(&path, &key)?;
            tracing::warn!(path = %path.display(), key_id = key.id(),
                "generated a vault master key; back this file up: without it the vault's secrets cannot be decrypted");
            Keyring::new(vec![key], "k1").map_err(|e| CliError::failed(e.to_string()))?
        }
    };
    let sync = vault::sync_keys(store, &keyring).await.map_err(vault_error)?;
    if !sync.not_configured.is_empty() {
        tracing::warn!(keys = ?sync.not_configured, "vault master keys known to the database are not configured; their secrets cannot be decrypted here");
    }
    tracing::info!(active_key = keyring.active_id(), "vault ready");
    Ok(keyring)
}

fn write_new_key_file(path: &Path, key: &MasterKey) -> Result<(), CliError> {
    let fail = |e: std::io::Error| CliError::failed(format!("vault key file {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(fail)?;
    let line = key.to_config_string();
    let body = Zeroizing::new(format!(
        "# Spine vault master keys, one `id:base64` per line. Keep a backup; never commit it.\n{}\n",
        line.expose().as_str()
    ));
    f.write_all(body.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)
}

pub fn vault_error(e: VaultStoreError) -> CliError {
    match e {
        VaultStoreError::Store(s) => CliError::from(s),
        VaultStoreError::Refused(w) => CliError::failed(w),
        other => CliError::failed(other.to_string()),
    }
}

pub async fn run(store: &Store, settings: &Settings, cmd: KeysCmd) -> Result<(), CliError> {
    match cmd {
        KeysCmd::Status { json } => {
            let keyring = load_keyring(settings)?;
            let status = vault::status(store).await.map_err(vault_error)?;
            let configured = |id: &str| keyring.as_ref().is_some_and(|k| k.contains(id));
            if json {
                let keys: Vec<_> = status
                    .keys
                    .iter()
                    .map(|k| {
                        let mut v = serde_json::to_value(k).unwrap_or_default();
                        v["configured"] = json!(configured(&k.key_id));
                        v
                    })
                    .collect();
                let active = keyring.as_ref().map(|k| k.active_id());
                output::json(&json!({"configured_active_key": active, "keys": keys, "rotation": status.rotation}));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = status
                .keys
                .iter()
                .map(|k| {
                    let yes = if configured(&k.key_id) { "yes" } else { "no" };
                    vec![k.key_id.clone(), k.state.clone(), k.secrets.to_string(), k.fingerprint.clone(), yes.into()]
                })
                .collect();
            output::table(&["KEY", "STATE", "SECRETS", "FINGERPRINT", "CONFIGURED"], &rows);
            if let Some(r) = &status.rotation {
                output::text(&format!(
                    "rotation {} to {}: {} ({}/{} secrets, {} batches)",
                    r.id, r.target_key_id, r.state, r.secrets_rotated, r.secrets_total, r.batches
                ));
            }
        }
        KeysCmd::Rotate { batch, max_batches, json } => {
            if batch < 1 {
                return Err(CliError::usage("--batch must be at least 1"));
            }
            let keyring = require_keyring(settings)?;
            let opts = RotateOptions { batch_size: batch, max_batches };
            let p = vault::rotate(store, &keyring, opts, |p| {
                if !json && !p.finished {
                    output::text(&format!(
                        "rotated {}/{} secrets to {} (batch {}, {} ms)",
                        p.rotated, p.total, p.target_key_id, p.batches, p.elapsed_ms
                    ));
                }
            })
            .await
            .map_err(vault_error)?;
            if json {
                output::json(&p);
            } else if p.finished {
                let rate = p.rotated_now as f64 / (p.elapsed_ms.max(1) as f64 / 1000.0);
                output::text(&format!(
                    "rotation to {} finished: {} secrets re-encrypted ({} now, {rate:.0}/s){}",
                    p.target_key_id,
                    p.rotated,
                    p.rotated_now,
                    if p.resumed { ", resumed" } else { "" }
                ));
            } else {
                output::text(&format!(
                    "rotation to {} paused after {} batches: {}/{} secrets; run it again to resume",
                    p.target_key_id, p.batches, p.rotated, p.total
                ));
            }
        }
        KeysCmd::Retire { key_id, json } => {
            vault::retire(store, &key_id).await.map_err(|e| {
                let refused = matches!(e, VaultStoreError::Refused(_));
                let err = vault_error(e);
                if refused { err.hint("`spine keys status` shows which keys still seal secrets") } else { err }
            })?;
            if json {
                output::json(&json!({"key_id": key_id, "state": "retired"}));
            } else {
                output::text(&format!("key {key_id} retired"));
            }
        }
    }
    Ok(())
}
