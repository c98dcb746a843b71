//! Operator commands: tenants, keys, users. They act with the database owner's rights as actor
//! `system:cli` and write the same audit events as the API.

use std::io::BufRead;

use serde_json::json;
use spine_core::auth::{GeneratedKey, KeyKind, Role, Scope, hash_password};
use spine_core::ids::TenantId;
use spine_core::names::{DisplayName, EmailAddress, TenantSlug};
use spine_core::secret::Secret;
use spine_store::Store;
use spine_store::repos::{audit, keys, tenants, users};

use crate::error::CliError;
use crate::output;

const ACTOR: &str = "system:cli";

fn event<'a>(tenant: Option<TenantId>, action: &'a str, kind: &'a str, target: String) -> audit::AuditEvent<'a> {
    audit::AuditEvent {
        tenant,
        actor_kind: "system",
        actor_id: Some("cli".into()),
        action,
        success: true,
        target_kind: Some(kind),
        target_id: Some(target),
        request_id: None,
        details: json!({}),
    }
}

pub async fn find_tenant(store: &Store, id_or_slug: &str) -> Result<tenants::Tenant, CliError> {
    let mut tx = store.system_tx().await?;
    let t = tenants::find(&mut tx, id_or_slug).await.map_err(|_| {
        CliError::failed(format!("no tenant {id_or_slug:?}")).hint("list tenants with `spine tenant list`")
    })?;
    tx.commit().await?;
    Ok(t)
}

pub async fn tenant_create(
    store: &Store,
    slug: &str,
    name: Option<&str>,
    integrations: bool,
) -> Result<tenants::Tenant, CliError> {
    let slug = TenantSlug::parse(slug)?;
    let name = DisplayName::parse("name", name.unwrap_or(slug.as_str()))?;
    let mut tx = store.system_tx().await?;
    let t = tenants::create(&mut tx, &slug, &name, integrations, ACTOR).await?;
    audit::record(tx.conn(), event(Some(TenantId(t.id)), "tenant.create", "tenant", t.id.to_string())).await?;
    tx.commit().await?;
    Ok(t)
}

pub struct TenantUpdate<'a> {
    pub name: Option<&'a str>,
    pub integrations: Option<bool>,
    pub status: Option<&'a str>,
}

pub async fn tenant_update(store: &Store, tenant: &str, u: TenantUpdate<'_>) -> Result<tenants::Tenant, CliError> {
    let name = u.name.map(|n| DisplayName::parse("name", n)).transpose()?;
    let t = find_tenant(store, tenant).await?;
    let mut tx = store.system_tx().await?;
    let changes =
        tenants::TenantChanges { display_name: name.as_ref(), integrations_enabled: u.integrations, status: u.status };
    let t = tenants::update(&mut tx, t.id, changes, ACTOR).await?;
    let mut e = event(Some(TenantId(t.id)), "tenant.update", "tenant", t.id.to_string());
    e.details =
        json!({ "integrations_enabled": u.integrations, "status": u.status, "display_name_changed": u.name.is_some() });
    audit::record(tx.conn(), e).await?;
    tx.commit().await?;
    Ok(t)
}

pub fn print_tenants(rows: &[tenants::Tenant], json: bool) {
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|t| json!({"id": t.id, "slug": t.slug, "display_name": t.display_name,
                            "integrations_enabled": t.integrations_enabled, "status": t.status, "created_at": t.created_at}))
            .collect();
        output::json(&v);
    } else {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.slug.clone(),
                    t.status.clone(),
                    t.integrations_enabled.to_string(),
                    t.display_name.clone(),
                ]
            })
            .collect();
        output::table(&["ID", "SLUG", "STATUS", "INTEGRATIONS", "NAME"], &rows);
    }
}

pub async fn tenant_list(store: &Store) -> Result<Vec<tenants::Tenant>, CliError> {
    let mut tx = store.system_tx().await?;
    let rows = tenants::list(&mut tx).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Creates an API key in a tenant. Returns the key row and the key (to print once).
pub async fn api_key_create(
    store: &Store,
    tenant: TenantId,
    name: &str,
    scopes: &[Scope],
) -> Result<(keys::ApiKey, GeneratedKey), CliError> {
    let name = DisplayName::parse("name", name)?;
    let key = GeneratedKey::generate(KeyKind::Api);
    let mut tx = store.tenant_tx(tenant).await?;
    let row = keys::create_api_key(&mut tx, name.as_str(), scopes, None, &key, ACTOR).await?;
    audit::record(tx.conn(), event(Some(tenant), "api_key.create", "api_key", row.key_prefix.clone())).await?;
    tx.commit().await?;
    Ok((row, key))
}

pub async fn key_create(
    store: &Store,
    tenant: Option<&str>,
    service: bool,
    name: &str,
    scopes: &[String],
    json: bool,
) -> Result<(), CliError> {
    let (prefix, key, tenant_id) = if service {
        let name = DisplayName::parse("name", name)?;
        let key = GeneratedKey::generate(KeyKind::Service);
        let mut tx = store.system_tx().await?;
        let row = keys::create_service_key(&mut tx, name.as_str(), &key, ACTOR).await?;
        audit::record(tx.conn(), event(None, "service_key.create", "service_key", row.key_prefix.clone())).await?;
        tx.commit().await?;
        (row.key_prefix, key, None)
    } else {
        let scopes: Vec<Scope> =
            scopes.iter().map(|s| s.parse::<Scope>().map_err(CliError::usage)).collect::<Result<_, _>>()?;
        let t = find_tenant(store, tenant.unwrap_or_default()).await?;
        let (row, key) = api_key_create(store, TenantId(t.id), name, &scopes).await?;
        (row.key_prefix, key, Some(t.id))
    };
    if json {
        output::json(&json!({ "prefix": prefix, "key": key.key.expose(), "tenant_id": tenant_id }));
    } else {
        output::text(&format!(
            "{}\n(shown once: store it now; `spine key list` shows only the prefix {prefix})",
            key.key.expose()
        ));
    }
    Ok(())
}

pub async fn key_list(store: &Store, tenant: Option<&str>, json: bool) -> Result<(), CliError> {
    let rows: Vec<(String, String, String, String, String)> = match tenant {
        Some(t) => {
            let t = find_tenant(store, t).await?;
            let mut tx = store.tenant_tx(TenantId(t.id)).await?;
            let rows = keys::list_api_keys(&mut tx).await?;
            tx.commit().await?;
            rows.into_iter().map(|k| (k.id.to_string(), k.key_prefix, k.status, k.scopes.join(","), k.name)).collect()
        }
        None => {
            let mut tx = store.system_tx().await?;
            let rows = keys::list_service_keys(&mut tx).await?;
            tx.commit().await?;
            rows.into_iter().map(|k| (k.id.to_string(), k.key_prefix, k.status, "service".to_owned(), k.name)).collect()
        }
    };
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(id, p, s, sc, n)| json!({"id": id, "prefix": p, "status": s, "scopes": sc, "name": n}))
            .collect();
        output::json(&v);
    } else {
        let rows: Vec<Vec<String>> = rows.into_iter().map(|(a, b, c, d, e)| vec![a, b, c, d, e]).collect();
        output::table(&["ID", "PREFIX", "STATUS", "SCOPES", "NAME"], &rows);
    }
    Ok(())
}

pub async fn key_revoke(store: &Store, key: &str) -> Result<(), CliError> {
    let mut tx = store.system_tx().await?;
    let prefix = keys::revoke_any(&mut tx, key, ACTOR).await.map_err(|_| {
        CliError::failed(format!("no key {key:?}")).hint("give a key id or prefix from `spine key list`")
    })?;
    audit::record(tx.conn(), event(None, "api_key.revoke", "key", prefix.clone())).await?;
    tx.commit().await?;
    output::text(&format!("revoked {prefix}"));
    Ok(())
}

pub struct NewUserArgs<'a> {
    pub tenant: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub platform_admin: bool,
}

pub async fn user_create(store: &Store, a: NewUserArgs<'_>, json: bool) -> Result<(), CliError> {
    let email = EmailAddress::parse(a.email)?;
    let name = DisplayName::parse("name", a.name)?;
    let role: Role = a.role.parse().map_err(CliError::usage)?;
    let t = find_tenant(store, a.tenant).await?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::failed(format!("reading the password from stdin: {e}")))?;
    let password = Secret::new(line.trim_end_matches(['\r', '\n']).to_owned());
    let hash = hash_password(&password).map_err(|e| {
        CliError::usage(e.to_string())
            .hint("pipe the password on stdin, e.g. `printf '%s\\n' \"$PW\" | spine user create …`")
    })?;
    let mut tx = store.system_tx().await?;
    let user = users::create(
        &mut tx,
        users::NewUser {
            email: &email,
            display_name: &name,
            password_hash: &hash,
            platform_admin: a.platform_admin,
            created_by: ACTOR,
        },
    )
    .await?;
    users::add_membership(&mut tx, TenantId(t.id), user.id, role, ACTOR).await?;
    audit::record(tx.conn(), event(Some(TenantId(t.id)), "user.create", "user", user.id.to_string())).await?;
    tx.commit().await?;
    if json {
        output::json(&json!({"id": user.id, "email": user.email, "tenant_id": t.id, "role": role.as_str()}));
    } else {
        output::text(&format!("created user {} ({}) as {} in {}", user.email, user.id, role.as_str(), t.slug));
    }
    Ok(())
}

/// First run of `spine up`: with no tenant at all, create `default` and an admin key for it.
pub async fn bootstrap(store: &Store) -> Result<Option<(tenants::Tenant, GeneratedKey)>, CliError> {
    if !tenant_list(store).await?.is_empty() {
        return Ok(None);
    }
    let t = match tenant_create(store, "default", Some("Default tenant"), false).await {
        Ok(t) => t,
        Err(_) => return Ok(None), // another process bootstrapped first
    };
    let (_, key) = api_key_create(store, TenantId(t.id), "bootstrap admin key", &[Scope::Admin]).await?;
    Ok(Some((t, key)))
}
