//! Online master-key rotation: every secret not under the active key is opened with its own key
//! and sealed again under the active one, in batches. Each batch is one transaction that locks
//! its rows `FOR UPDATE SKIP LOCKED`, rewrites them and advances `qivault.rotations.
//! last_processed_id`, so a crash loses at most the batch in flight and the next run resumes.
//! Readers never wait: they see the committed old or new ciphertext, and the keyring opens both.

use std::time::{Duration, Instant};

use spine_core::vault::{self as crypto, Keyring};
use sqlx::Row;
use uuid::Uuid;

use super::{SECRET_COLUMNS, StoredSecret, VaultStoreError, binding, sync_keys};
use crate::{Store, StoreError};

#[derive(Clone, Copy, Debug)]
pub struct RotateOptions {
    /// Secrets per transaction.
    pub batch_size: i64,
    /// Stop (resumably) after this many batches; `None` runs to the end.
    pub max_batches: Option<u64>,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self { batch_size: 500, max_batches: None }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RotationProgress {
    pub rotation_id: Uuid,
    pub target_key_id: String,
    /// True when this run continued a rotation an earlier run started.
    pub resumed: bool,
    /// Secrets under other keys when the rotation started.
    pub total: i64,
    /// Re-encrypted so far, by every run of this rotation.
    pub rotated: i64,
    /// Re-encrypted by this run.
    pub rotated_now: i64,
    pub batches: i32,
    pub finished: bool,
    pub elapsed_ms: u64,
}

/// How often a pass may find only rows locked by others before giving up.
const LOCKED_RETRIES: u32 = 600;

/// Rotates every secret to the keyring's active key. Registers the keyring first (see
/// [`sync_keys`]). Returns the final progress; `finished` is false when `max_batches` stopped it.
pub async fn rotate(
    store: &Store,
    keyring: &Keyring,
    opts: RotateOptions,
    mut progress: impl FnMut(&RotationProgress),
) -> Result<RotationProgress, VaultStoreError> {
    if opts.batch_size < 1 {
        return Err(StoreError::Invalid("batch size must be at least 1".into()).into());
    }
    sync_keys(store, keyring).await?;
    let started = Instant::now();
    let target = keyring.active_id().to_owned();
    let mut p = begin(store, &target).await?;
    // Some(from) while sweeping again from the start for rows an earlier pass skipped as locked.
    let mut sweep: Option<Uuid> = None;
    let mut locked_retries = 0;
    let mut batches_now = 0u64;
    loop {
        if opts.max_batches.is_some_and(|m| batches_now >= m) {
            break;
        }
        let mut tx = store.system_tx().await?;
        let row = sqlx::query("SELECT state, last_processed_id FROM qivault.rotations WHERE id = $1 FOR UPDATE")
            .bind(p.rotation_id)
            .fetch_one(tx.conn())
            .await?;
        if row.try_get::<String, _>("state")? != "running" {
            // Another process finished (or superseded) it meanwhile.
            p.finished = true;
            break;
        }
        let cursor: Option<Uuid> = row.try_get("last_processed_id")?;
        let from = sweep.or(cursor).unwrap_or_else(Uuid::nil);
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM qivault.secrets WHERE key_id <> $1 AND id > $2
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&target)
            .bind(from)
            .bind(opts.batch_size)
            .fetch_all(tx.conn())
            .await?;
        if rows.is_empty() {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.secrets WHERE key_id <> $1")
                .bind(&target)
                .fetch_one(tx.conn())
                .await?;
            if left == 0 {
                sqlx::query("UPDATE qivault.rotations SET state = 'finished', finished_at = now() WHERE id = $1")
                    .bind(p.rotation_id)
                    .execute(tx.conn())
                    .await?;
                tx.commit().await?;
                p.finished = true;
                break;
            }
            tx.commit().await?;
            if sweep.is_some() {
                // Only rows other transactions hold remain (a replace in flight): wait for them.
                locked_retries += 1;
                if locked_retries > LOCKED_RETRIES {
                    return Err(VaultStoreError::Conflict(format!(
                        "{left} secret(s) stayed locked by other transactions; run the rotation again"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Rows skipped as locked lie behind the cursor: sweep again from the start.
            sweep = Some(Uuid::nil());
            continue;
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut nonces = Vec::with_capacity(rows.len());
        let mut cts = Vec::with_capacity(rows.len());
        for r in &rows {
            let s = StoredSecret::from_row(r)?;
            let id = s.meta.id;
            let sealed = spine_core::vault::Sealed::from_parts(s.meta.key_id.clone(), &s.nonce, s.ciphertext)
                .map_err(|source| VaultStoreError::Secret { id, source })?;
            let aad = binding(&s.meta).to_aad();
            let moved =
                crypto::reseal(keyring, &sealed, &aad).map_err(|source| VaultStoreError::Secret { id, source })?;
            ids.push(id);
            nonces.push(moved.nonce.to_vec());
            cts.push(moved.ciphertext);
        }
        let last = *ids.last().expect("non-empty batch");
        if sweep.is_some() {
            sweep = Some(last);
        }
        let n = ids.len() as i64;
        sqlx::query(
            "UPDATE qivault.secrets s SET key_id = $1, nonce = u.nonce, ciphertext = u.ciphertext
             FROM unnest($2::uuid[], $3::bytea[], $4::bytea[]) AS u(id, nonce, ciphertext) WHERE s.id = u.id",
        )
        .bind(&target)
        .bind(&ids)
        .bind(&nonces)
        .bind(&cts)
        .execute(tx.conn())
        .await?;
        // The cursor only moves forward; a sweep from the start leaves it where it was.
        sqlx::query(
            "UPDATE qivault.rotations SET secrets_rotated = secrets_rotated + $2, batches = batches + 1,
                    last_processed_id = CASE WHEN last_processed_id IS NULL OR last_processed_id < $3 THEN $3 ELSE last_processed_id END
             WHERE id = $1",
        )
        .bind(p.rotation_id)
        .bind(n)
        .bind(last)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        batches_now += 1;
        p.rotated += n;
        p.rotated_now += n;
        p.batches += 1;
        p.elapsed_ms = started.elapsed().as_millis() as u64;
        progress(&p);
    }
    p.elapsed_ms = started.elapsed().as_millis() as u64;
    if p.finished {
        progress(&p);
    }
    Ok(p)
}

/// The running rotation to `target` (resumed), or a new one; a running rotation to another key is
/// superseded.
async fn begin(store: &Store, target: &str) -> Result<RotationProgress, VaultStoreError> {
    for _ in 0..3 {
        let mut tx = store.system_tx().await?;
        sqlx::query(
            "UPDATE qivault.rotations SET state = 'superseded', finished_at = now()
             WHERE state = 'running' AND target_key_id <> $1",
        )
        .bind(target)
        .execute(tx.conn())
        .await?;
        let running = sqlx::query(
            "SELECT id, secrets_total, secrets_rotated, batches FROM qivault.rotations WHERE state = 'running'",
        )
        .fetch_optional(tx.conn())
        .await?;
        let (row, resumed) = match running {
            Some(r) => (r, true),
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO qivault.rotations (target_key_id, secrets_total)
                     SELECT $1, count(*) FROM qivault.secrets WHERE key_id <> $1
                     RETURNING id, secrets_total, secrets_rotated, batches",
                )
                .bind(target)
                .fetch_one(tx.conn())
                .await;
                match inserted {
                    Ok(r) => (r, false),
                    // Another process started one at the same moment: resume theirs.
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let p = RotationProgress {
            rotation_id: row.try_get("id")?,
            target_key_id: target.to_owned(),
            resumed,
            total: row.try_get("secrets_total")?,
            rotated: row.try_get("secrets_rotated")?,
            rotated_now: 0,
            batches: row.try_get("batches")?,
            finished: false,
            elapsed_ms: 0,
        };
        tx.commit().await?;
        return Ok(p);
    }
    Err(VaultStoreError::Conflict("could not start or resume a rotation; try again".into()))
}
