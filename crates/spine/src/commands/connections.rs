//! `spine connection …`: a tenant's connections, straight on the database (decision 0021).
//! Non-secret config comes from `--config-json`; secret fields only from `--secret-file` or
//! stdin (a JSON object merged into the config, e.g. `{"auth": {"token": "…"}}`), never from argv:
//! a secret field in `--config-json` is refused. Output never contains a secret. An update that
//! gives a secret runs the connector's test call with the new credentials first (decision 0023).

mod checks;
mod events;
mod secrets;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use spine_core::connector::ConnectorType;
use spine_core::ids::TenantId;
use spine_core::vault::Keyring;
use spine_pipeline::connectors::CheckKind;
use spine_store::repos::connections::{self as repo, Connection, ConnectionChanges, ConnectionError, NewConnection};
use spine_store::{Store, StoreError, TenantTx};

use crate::config::Settings;
use crate::error::CliError;
use crate::output;
use secrets::{SecretArg, merge, read_secrets, refuse_argv_secrets};

#[derive(Subcommand, Debug)]
pub enum ConnectionCmd {
    /// Create a connection; secrets from --secret-file or stdin.
    Create {
        #[command(flatten)]
        t: TenantArg,
        /// Connector type, e.g. http_json or webhook_out (see GET /v1/connector-types).
        #[arg(long = "type")]
        connector_type: String,
        #[arg(long)]
        name: String,
        /// Non-secret config as JSON, e.g. '{"base_url":"https://…","auth":{"type":"bearer"}}'.
        #[arg(long = "config-json", value_name = "JSON")]
        config_json: String,
        #[command(flatten)]
        secrets: SecretArg,
        #[arg(long)]
        json: bool,
    },
    /// The tenant's connections.
    List {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// One connection (by id or name), with which secret fields are set.
    Show {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Rename, or replace the config (secret fields left out are kept); new secrets from --secret-file or stdin.
    Update {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        name: Option<String>,
        /// New non-secret config as JSON (replaces the old; secret fields left out are kept).
        #[arg(long = "config-json", value_name = "JSON")]
        config_json: Option<String>,
        #[command(flatten)]
        secrets: SecretArg,
        /// Store new secrets without the connector's test call (e.g. while the remote is down).
        #[arg(long)]
        skip_test: bool,
        /// Mark the connection degraded after this many failed calls in a row (1-1000; default 3).
        #[arg(long, value_name = "N")]
        degrade_after: Option<i32>,
        /// Disable it once degraded and failing for this many seconds (default 86400).
        #[arg(long, value_name = "SECS")]
        disable_after_secs: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// The connection's status changes (by people and by the runtime), newest first, and its rate-limit counters.
    Events {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Run the connection's health check and record it; exit 1 when it fails.
    Health {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Run the connection's test call (validates its stored credentials) and record it; exit 1 when it fails.
    Test {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Delete a connection and its secrets.
    Delete {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
    },
    /// Disable a connection.
    Disable {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Enable a connection.
    Enable {
        connection: String,
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct TenantArg {
    /// Tenant slug or id.
    #[arg(long)]
    tenant: String,
}

fn connection_json(c: &Connection) -> Value {
    json!({
        "id": c.id, "connector_type": c.connector_type, "name": c.name, "config": c.config,
        "secrets_set": c.secrets_set(), "is_active": c.is_active, "status": c.status,
        "status_reason": c.status_reason, "last_used_at": c.last_used_at, "metadata": c.metadata,
        "notes": c.notes, "created_at": c.created_at, "updated_at": c.updated_at,
        "degrade_after_failures": c.degrade_after_failures, "disable_after_secs": c.disable_after_secs,
        "consecutive_failures": c.consecutive_failures, "failing_since": c.failing_since,
        "last_error_class": c.last_error_class, "last_error_at": c.last_error_at,
    })
}

fn print(c: &Connection, json: bool) {
    if json {
        output::json(&connection_json(c));
    } else {
        let secrets = c.secrets_set();
        output::text(&format!(
            "{}  {}  {}  {}{}\nconfig: {}\nsecrets set: {}",
            c.id,
            c.name,
            c.connector_type,
            c.status,
            c.status_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
            c.config,
            if secrets.is_empty() { "none".to_owned() } else { secrets.join(", ") },
        ));
    }
}

/// The tenant's transaction, refused when the tenant has integrations disabled.
async fn open(store: &Store, tenant: &str) -> Result<TenantTx, CliError> {
    let t = crate::commands::admin::find_tenant(store, tenant).await?;
    if !t.integrations_enabled {
        return Err(CliError::failed(format!("integrations are not enabled for tenant {}", t.slug))
            .hint(format!("enable them with `spine tenant update {} --integrations true`", t.slug)));
    }
    Ok(store.tenant_tx(TenantId(t.id)).await?)
}

async fn keyring(store: &Store, settings: &Settings) -> Result<Keyring, CliError> {
    let ring = crate::commands::vault::load_keyring(settings)?.ok_or_else(|| {
        CliError::config("no vault master key is configured")
            .hint("set vault.master_keys or vault.key_file, or start `spine up` once to create data_dir/vault.keys")
    })?;
    spine_store::vault::sync_keys(store, &ring).await.map_err(crate::commands::vault::vault_error)?;
    Ok(ring)
}

fn parse_object(what: &str, text: &str) -> Result<Value, CliError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(CliError::usage(format!("{what} must be a JSON object"))),
        Err(e) => Err(CliError::usage(format!("{what} is not JSON: {e}"))),
    }
}

fn map_err(e: ConnectionError) -> CliError {
    match e {
        ConnectionError::Invalid(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            CliError::usage(format!("invalid connection:\n{}", lines.join("\n")))
        }
        ConnectionError::Store(s) => store_err(s),
        ConnectionError::Vault(v) => crate::commands::vault::vault_error(v),
    }
}

fn store_err(e: StoreError) -> CliError {
    match e {
        StoreError::NotFound => {
            CliError::failed("no such connection").hint("list them with `spine connection list --tenant T`")
        }
        StoreError::Conflict(w) => CliError::failed(w),
        other => other.into(),
    }
}

async fn find(tx: &mut TenantTx, connection: &str) -> Result<Connection, CliError> {
    repo::find(tx, connection).await.map_err(store_err)
}

async fn check(
    store: &Store,
    settings: &Settings,
    connection: &str,
    t: &TenantArg,
    kind: CheckKind,
    json: bool,
) -> Result<(), CliError> {
    let mut tx = open(store, &t.tenant).await?;
    let c = find(&mut tx, connection).await?;
    let tenant = tx.tenant();
    tx.commit().await?;
    let ring = keyring(store, settings).await?;
    checks::run(store, &ring, tenant, &c, kind, json).await
}

pub async fn run(store: &Store, settings: &Settings, cmd: ConnectionCmd) -> Result<(), CliError> {
    match cmd {
        ConnectionCmd::Create { t, connector_type, name, config_json, secrets, json } => {
            let ty = ConnectorType::from_name(&connector_type).ok_or_else(|| {
                let known: Vec<&str> = ConnectorType::ALL.iter().map(|t| t.name()).collect();
                CliError::usage(format!("unknown connector type {connector_type:?}; known: {}", known.join(", ")))
            })?;
            let mut config = parse_object("--config-json", &config_json)?;
            refuse_argv_secrets(ty, &config)?;
            if let Some(s) = read_secrets(&secrets)? {
                merge(&mut config, s);
            }
            let ring = keyring(store, settings).await?;
            let mut tx = open(store, &t.tenant).await?;
            let new = NewConnection {
                connector_type: ty,
                name: &name,
                config,
                metadata: json!({}),
                notes: None,
                created_by: "cli",
            };
            let c = repo::create(&mut tx, &ring, new).await.map_err(map_err)?;
            tx.commit().await?;
            print(&c, json);
        }
        ConnectionCmd::List { t, json } => {
            let mut tx = open(store, &t.tenant).await?;
            let rows = repo::list(&mut tx).await?;
            tx.commit().await?;
            if json {
                output::json(&rows.iter().map(connection_json).collect::<Vec<_>>());
            } else {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.to_string(),
                            c.name.clone(),
                            c.connector_type.clone(),
                            c.status.clone(),
                            c.secrets_set().join(","),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "TYPE", "STATUS", "SECRETS_SET"], &rows);
            }
        }
        ConnectionCmd::Show { connection, t, json } => {
            let mut tx = open(store, &t.tenant).await?;
            let c = find(&mut tx, &connection).await?;
            tx.commit().await?;
            print(&c, json);
        }
        ConnectionCmd::Update {
            connection,
            t,
            name,
            config_json,
            secrets,
            skip_test,
            degrade_after,
            disable_after_secs,
            json,
        } => {
            let mut tx = open(store, &t.tenant).await?;
            let current = find(&mut tx, &connection).await?;
            let ty = ConnectorType::from_name(&current.connector_type)
                .ok_or_else(|| CliError::failed(format!("unknown connector type {:?}", current.connector_type)))?;
            let mut new_config = config_json.as_deref().map(|c| parse_object("--config-json", c)).transpose()?;
            if let Some(c) = &new_config {
                refuse_argv_secrets(ty, c)?;
            }
            let mut rotation = false;
            if let Some(s) = read_secrets(&secrets)? {
                rotation = true;
                merge(new_config.get_or_insert_with(|| current.config.clone()), s);
            }
            let ring = keyring(store, settings).await?;
            if rotation && !skip_test {
                let tenant = tx.tenant();
                tx.commit().await?;
                checks::guard_rotation(store, &ring, tenant, &current, new_config.clone().unwrap_or_default()).await?;
                tx = store.tenant_tx(tenant).await?;
                if repo::lock(&mut tx, current.id).await.map_err(store_err)?.updated_at != current.updated_at {
                    return Err(CliError::failed("the connection changed while the new credentials were tested")
                        .hint("run the update again"));
                }
            }
            let changes = ConnectionChanges {
                name: name.as_deref(),
                config: new_config,
                degrade_after_failures: degrade_after,
                disable_after_secs,
                ..Default::default()
            };
            let c = repo::update(&mut tx, &ring, current.id, changes, checks::ACTOR).await.map_err(map_err)?;
            tx.commit().await?;
            if rotation {
                tracing::info!(
                    connection_id = %c.id, tested = !skip_test, "credential rotation: new credentials stored"
                );
            }
            print(&c, json);
        }
        ConnectionCmd::Events { connection, t, limit, json } => {
            let mut tx = open(store, &t.tenant).await?;
            let c = find(&mut tx, &connection).await?;
            events::print(&mut tx, &c, limit, json).await?;
            tx.commit().await?;
        }
        ConnectionCmd::Health { connection, t, json } => {
            check(store, settings, &connection, &t, CheckKind::Health, json).await?;
        }
        ConnectionCmd::Test { connection, t, json } => {
            check(store, settings, &connection, &t, CheckKind::Test, json).await?;
        }
        ConnectionCmd::Delete { connection, t } => {
            let mut tx = open(store, &t.tenant).await?;
            let c = find(&mut tx, &connection).await?;
            repo::delete(&mut tx, c.id).await.map_err(map_err)?;
            tx.commit().await?;
            output::text(&format!("deleted {} ({})", c.id, c.name));
        }
        ConnectionCmd::Disable { connection, t, reason, json } => {
            let mut tx = open(store, &t.tenant).await?;
            let c = find(&mut tx, &connection).await?;
            let c = repo::set_enabled(&mut tx, c.id, false, reason.as_deref(), "cli").await.map_err(store_err)?;
            tx.commit().await?;
            print(&c, json);
        }
        ConnectionCmd::Enable { connection, t, json } => {
            let mut tx = open(store, &t.tenant).await?;
            let c = find(&mut tx, &connection).await?;
            let c = repo::set_enabled(&mut tx, c.id, true, None, "cli").await.map_err(store_err)?;
            tx.commit().await?;
            print(&c, json);
        }
    }
    Ok(())
}
