//! `spine bench vault`: what the vault costs, each figure beside a baseline in the same run.
//!
//! 1. Seal + open per secret through `spine_core::vault` (keyring lookup, row binding as AAD,
//!    random nonce, zeroized plaintext) against a raw `aes-gcm` encrypt + decrypt loop (counter
//!    nonce, no AAD, no zeroize) on the same value size.
//! 2. `vault::rotate` of `--secrets` secrets (the `bench-vault` tenant) in batches of `--batch`,
//!    against the same rows rewritten by plain SQL `UPDATE`s: in batches of the same size by id
//!    (each its own transaction), and as one statement.
//!
//! Prints a line per figure and one `RESULT {json}`. It refuses to run on a database whose vault
//! holds anything but its own rows: rotation moves every secret, so use a benchmark database.

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use clap::Args;
use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::secret::Secret;
use spine_core::vault::{self, Keyring, MasterKey, SecretBinding};
use spine_store::Store;
use spine_store::vault::{self as store_vault, RotateOptions, SecretOwner};
use sqlx::PgPool;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::commands::vault::vault_error;
use crate::error::CliError;
use crate::output;

const TENANT: &str = "bench-vault";
const KEYS: [&str; 2] = ["bench-k1", "bench-k2"];

#[derive(Args, Debug)]
pub struct VaultArgs {
    /// Secrets to rotate.
    #[arg(long, default_value_t = 100_000)]
    pub secrets: usize,
    /// Secrets per rotation transaction (and per baseline UPDATE batch).
    #[arg(long, default_value_t = 1000)]
    pub batch: i64,
    /// Seal + open iterations for the per-secret cost.
    #[arg(long, default_value_t = 200_000)]
    pub iterations: usize,
    /// Bytes per secret value.
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
    /// Print only the RESULT object.
    #[arg(long)]
    pub json: bool,
}

fn sql(e: sqlx::Error) -> CliError {
    CliError::failed(format!("database: {e}"))
}

fn say(args: &VaultArgs, s: &str) {
    if !args.json {
        output::text(s);
    }
}

pub async fn run(pool: &PgPool, args: VaultArgs) -> Result<(), CliError> {
    if args.batch < 1 || args.secrets == 0 || args.iterations == 0 {
        return Err(CliError::usage("--batch, --secrets and --iterations must be positive"));
    }
    let (ours_us, raw_us) = crypto_costs(&args)?;
    say(
        &args,
        &format!(
            "seal+open per secret ({} B): vault {ours_us:.3} µs, raw aes-gcm {raw_us:.3} µs, ratio {:.2}",
            args.value_bytes,
            ours_us / raw_us
        ),
    );
    let store = Store::new(pool.clone());
    let tenant = prepare(&store, pool).await?;
    let k1 = ring("bench-k1")?;
    let k2 = ring("bench-k2")?;
    store_vault::sync_keys(&store, &k1).await.map_err(vault_error)?;
    let value = Secret::new(vec![0x42u8; args.value_bytes]);
    let started = Instant::now();
    let mut left = args.secrets;
    while left > 0 {
        let n = left.min(5000);
        let owners: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let items: Vec<_> = owners
            .iter()
            .map(|id| (SecretOwner { kind: "connection", id: *id, field: "api_token" }, value.clone()))
            .collect();
        let mut tx = store.tenant_tx(tenant).await?;
        store_vault::put_many(&mut tx, &k1, &items).await.map_err(vault_error)?;
        tx.commit().await?;
        left -= n;
    }
    let insert_s = started.elapsed().as_secs_f64();
    sqlx::query("VACUUM ANALYZE qivault.secrets").execute(pool).await.map_err(sql)?;
    say(
        &args,
        &format!("inserted {} secrets in {insert_s:.2} s ({:.0}/s)", args.secrets, args.secrets as f64 / insert_s),
    );

    let started = Instant::now();
    let p = store_vault::rotate(&store, &k2, RotateOptions { batch_size: args.batch, max_batches: None }, |_| {})
        .await
        .map_err(vault_error)?;
    let rotate_s = started.elapsed().as_secs_f64();
    if !p.finished || p.rotated_now != args.secrets as i64 {
        return Err(CliError::failed(format!("rotation did not move every secret: {p:?}")));
    }
    let rotate_rate = args.secrets as f64 / rotate_s;
    say(&args, &format!("rotate: {} secrets in {rotate_s:.2} s = {rotate_rate:.0} secrets/s", args.secrets));

    sqlx::query("VACUUM ANALYZE qivault.secrets").execute(pool).await.map_err(sql)?;
    let batched_s = batched_update(pool, tenant, args.batch).await?;
    let batched_rate = args.secrets as f64 / batched_s;
    say(&args, &format!("plain UPDATE in batches of {}: {batched_s:.2} s = {batched_rate:.0} rows/s", args.batch));
    sqlx::query("VACUUM ANALYZE qivault.secrets").execute(pool).await.map_err(sql)?;
    let started = Instant::now();
    sqlx::query(
        "UPDATE qivault.secrets SET key_id = key_id, nonce = nonce, ciphertext = ciphertext WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .execute(pool)
    .await
    .map_err(sql)?;
    let single_s = started.elapsed().as_secs_f64();
    let single_rate = args.secrets as f64 / single_s;
    say(&args, &format!("plain UPDATE, one statement: {single_s:.2} s = {single_rate:.0} rows/s"));
    say(
        &args,
        &format!(
            "rotation rate / batched UPDATE = {:.2}; / single UPDATE = {:.2}",
            rotate_rate / batched_rate,
            rotate_rate / single_rate
        ),
    );
    let result = json!({
        "bench": "vault", "value_bytes": args.value_bytes, "iterations": args.iterations,
        "seal_open_us": ours_us, "raw_aes_gcm_us": raw_us, "crypto_ratio": ours_us / raw_us,
        "secrets": args.secrets, "batch": args.batch, "rotate_secs": rotate_s, "rotate_per_sec": rotate_rate,
        "update_batched_per_sec": batched_rate, "update_single_per_sec": single_rate,
        "rotate_vs_batched_update": rotate_rate / batched_rate, "rotate_vs_single_update": rotate_rate / single_rate,
    });
    if args.json {
        output::json(&result);
    } else {
        output::text(&format!("RESULT {result}"));
    }
    Ok(())
}

fn ring(active: &str) -> Result<Keyring, CliError> {
    let keys = KEYS
        .iter()
        .enumerate()
        .map(|(i, id)| MasterKey::new(id, Zeroizing::new([i as u8 + 1; 32])))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::failed(e.to_string()))?;
    Keyring::new(keys, active).map_err(|e| CliError::failed(e.to_string()))
}

/// Microseconds per seal+open through the vault, and per encrypt+decrypt with raw aes-gcm.
fn crypto_costs(args: &VaultArgs) -> Result<(f64, f64), CliError> {
    let k = ring("bench-k1")?;
    let value = vec![0x42u8; args.value_bytes];
    let (tenant_id, owner_id) = (Uuid::now_v7(), Uuid::now_v7());
    let started = Instant::now();
    for i in 0..args.iterations {
        let b = SecretBinding {
            tenant_id,
            secret_id: Uuid::from_u128(i as u128),
            owner_kind: "connection",
            owner_id,
            field_name: "api_token",
            version: 1,
        };
        let aad = b.to_aad();
        let sealed = vault::seal(&k, &value, &aad).map_err(|e| CliError::failed(e.to_string()))?;
        let plain = vault::open(&k, &sealed, &aad).map_err(|e| CliError::failed(e.to_string()))?;
        black_box(plain.expose().len());
    }
    let ours = started.elapsed().as_secs_f64() * 1e6 / args.iterations as f64;
    let cipher = Aes256Gcm::new_from_slice(&[1u8; 32]).map_err(|e| CliError::failed(e.to_string()))?;
    let started = Instant::now();
    for i in 0..args.iterations {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let nonce = Nonce::from_slice(&n);
        let ct = cipher.encrypt(nonce, &value[..]).map_err(|_| CliError::failed("encrypt"))?;
        let pt = cipher.decrypt(nonce, &ct[..]).map_err(|_| CliError::failed("decrypt"))?;
        black_box(pt.len());
    }
    let raw = started.elapsed().as_secs_f64() * 1e6 / args.iterations as f64;
    Ok((ours, raw))
}

/// The bench tenant, with the vault emptied of its rows; refuses a vault with anything else.
async fn prepare(store: &Store, pool: &PgPool) -> Result<TenantId, CliError> {
    let mut tx = store.system_tx().await?;
    let found = spine_store::repos::tenants::find(&mut tx, TENANT).await;
    tx.commit().await?;
    let tenant = match found {
        Ok(t) => TenantId::from(t.id),
        Err(_) => TenantId::from(super::admin::tenant_create(store, TENANT, Some("Vault benchmarks"), false).await?.id),
    };
    let foreign: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM qivault.secrets WHERE tenant_id <> $1)
              + (SELECT count(*) FROM qivault.master_keys WHERE key_id <> ALL($2))",
    )
    .bind(tenant.as_uuid())
    .bind(&KEYS[..])
    .fetch_one(pool)
    .await
    .map_err(sql)?;
    if foreign > 0 {
        return Err(CliError::failed("the vault holds secrets or keys other than the benchmark's")
            .hint("run `spine bench vault` against a database used only for benchmarks"));
    }
    for stmt in [
        "DELETE FROM qivault.secrets",
        "DELETE FROM qivault.access_events",
        "DELETE FROM qivault.rotations",
        "DELETE FROM qivault.master_keys",
    ] {
        sqlx::query(stmt).execute(pool).await.map_err(sql)?;
    }
    Ok(tenant)
}

/// Rewrites the bench tenant's rows (same values) in id order, `batch` rows per transaction.
async fn batched_update(pool: &PgPool, tenant: TenantId, batch: i64) -> Result<f64, CliError> {
    let started = Instant::now();
    let mut cursor = Uuid::nil();
    loop {
        let last: Option<Uuid> = sqlx::query_scalar(
            "WITH b AS (SELECT id FROM qivault.secrets WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3 FOR UPDATE),
                  u AS (UPDATE qivault.secrets s SET key_id = s.key_id, nonce = s.nonce, ciphertext = s.ciphertext
                        FROM b WHERE s.id = b.id RETURNING s.id)
             SELECT id FROM u ORDER BY id DESC LIMIT 1",
        )
        .bind(tenant.as_uuid())
        .bind(cursor)
        .bind(batch)
        .fetch_optional(pool)
        .await
        .map_err(sql)?;
        match last {
            Some(id) => cursor = id,
            None => break,
        }
    }
    Ok(started.elapsed().as_secs_f64())
}
