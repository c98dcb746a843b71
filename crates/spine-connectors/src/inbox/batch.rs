//! Taking a batch of stable files of one folder at once (group commit, decision 0027). Each file
//! goes through the steps of the restart protocol in the same order as alone (check, stage its
//! bytes, record its intent, register, move, record its outcome); what the files of a batch
//! share is the durability of each step: one transaction for their intents, one flush of their
//! bytes and one registration transaction (through [`Registrar::commit`], shared with whatever
//! else registers at that moment), one transaction for their outcomes. A file that fails a step
//! fails alone: its registration is tried again alone, its outcome recorded alone.
//!
//! [`Registrar::commit`]: spine_pipeline::register::Registrar::commit

use std::io;

use chrono::Utc;
use spine_pipeline::register::{RegisterError, Staged};
use spine_store::StoreError;
use spine_store::blob::BlobError;
use spine_store::repos::inbox::{self, InboxEntry, NewInboxEntry};
use tokio::io::AsyncSeekExt as _;
use uuid::Uuid;

use super::scan::Seen;
use super::stability::Ready;
use super::state;
use super::take::{self, CrashPoint, Env, FolderCtx, Outcome, Recovery, Taken};

/// Stable files one batch takes at most (they are read one after the other: one open file).
pub(crate) const BATCH_FILES: usize = 32;

/// A file whose bytes are staged, with the entry its intent is recorded under.
struct Prepared {
    r: Ready,
    entry: InboxEntry,
    staged: Staged,
}

/// Takes `files` (each with the path's entry still `registering`, if any: resolved first, and
/// reused when its registration never committed). `crash` stops every file of the batch there.
pub(crate) async fn take_batch(
    env: &Env,
    ctx: &FolderCtx,
    files: Vec<(Ready, Option<InboxEntry>)>,
    crash: Option<CrashPoint>,
) -> Vec<(Ready, Taken)> {
    let mut out = Vec::with_capacity(files.len());
    let mut prepared = Vec::with_capacity(files.len());
    for (r, prior) in files {
        match prepare(env, ctx, &r, prior).await {
            Ok((entry, staged)) => prepared.push(Prepared { r, entry, staged }),
            Err(taken) => out.push((r, taken)),
        }
    }
    if prepared.is_empty() {
        return out;
    }

    // The intents, in one transaction: each before its registration can commit.
    if let Err(e) = record_intents(env, ctx, &prepared).await {
        let error = format!("recording the intent failed: {e}");
        let mut staged = Vec::with_capacity(prepared.len());
        for p in prepared {
            staged.push(p.staged);
            out.push((p.r, Taken::Retry { entry: Some(p.entry), error: error.clone() }));
        }
        env.registrar.discard_staged(staged).await;
        return out;
    }
    if crash == Some(CrashPoint::AfterIntent) {
        out.extend(prepared.into_iter().map(|p| (p.r, Taken::Stopped)));
        return out;
    }

    let mut rest = Vec::with_capacity(prepared.len());
    let mut staged = Vec::with_capacity(prepared.len());
    for p in prepared {
        rest.push((p.r, p.entry, p.staged.item().sha256.clone()));
        staged.push(p.staged);
    }
    let results = env.registrar.commit(ctx.folder.tenant, &ctx.arrival, staged).await;
    if crash == Some(CrashPoint::AfterRegister) {
        out.extend(rest.into_iter().map(|(r, _, _)| (r, Taken::Stopped)));
        return out;
    }

    let mut registered = Vec::with_capacity(rest.len());
    for ((r, entry, sha), res) in rest.into_iter().zip(results) {
        match res {
            Ok(reg) => registered.push((r, entry, Outcome::from(&reg))),
            Err(e) if take::permanent(&e) => {
                let why = format!("the registration was refused: {e}");
                let taken = take::fail(env, ctx, &r, Some(entry), Some(&sha), &why).await;
                out.push((r, taken));
            }
            Err(e) => {
                out.push((r, Taken::Retry { entry: Some(entry), error: format!("the registration failed: {e}") }))
            }
        }
    }
    finish_batch(env, ctx, registered, &mut out).await;
    out
}

/// Checks the file is still what was seen, resolves an earlier entry, and stages its bytes;
/// `Err` is how the take ended without staging anything.
async fn prepare(
    env: &Env,
    ctx: &FolderCtx,
    r: &Ready,
    prior: Option<InboxEntry>,
) -> Result<(InboxEntry, Staged), Taken> {
    let abs = ctx.folder.path.join(&r.rel);
    match tokio::fs::symlink_metadata(&abs).await {
        Ok(m) if Seen::of(&m) == r.seen => {}
        Ok(_) => return Err(Taken::Changed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(take::gone(env, ctx, prior).await),
        Err(e) => return Err(take::refuse(env, ctx, r, prior, &format!("the file could not be looked at: {e}")).await),
    }
    if let Some(why) = r.seen.special {
        return Err(take::refuse(env, ctx, r, prior, why).await);
    }
    let mut file = match take::open(&abs).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(take::gone(env, ctx, prior).await),
        Err(e) => return Err(take::refuse(env, ctx, r, prior, &format!("the file could not be opened: {e}")).await),
    };
    match file.metadata().await {
        Ok(m) if m.is_file() && Seen::of(&m) == r.seen => {}
        _ => return Err(Taken::Changed),
    }

    let mut entry = None;
    if let Some(p) = prior {
        match take::recover(env, ctx, r, &p, &mut file).await {
            Ok(Recovery::Finished(taken)) => return Err(taken),
            Ok(Recovery::Reuse) => entry = Some(p),
            Ok(Recovery::Fresh) => {}
            Err(error) => return Err(Taken::Retry { entry: Some(p), error }),
        }
        if let Err(e) = file.rewind().await {
            return Err(Taken::Retry { entry, error: format!("rewinding the file failed: {e}") });
        }
    }
    let entry = entry.unwrap_or_else(|| InboxEntry {
        id: Uuid::now_v7(),
        relative_path: state::encode(&r.rel).0,
        raw_path: state::encode(&r.rel).1,
        size_bytes: i64::try_from(r.seen.size).unwrap_or(i64::MAX),
        file_mtime_ns: r.seen.mtime_ns,
        content_sha256: None,
        status: inbox::REGISTERING.to_owned(),
        created_at: Utc::now(),
    });

    let staged = match env.registrar.stage(&entry.relative_path, take::details(ctx, r, &entry), &mut file).await {
        Ok(s) => s,
        Err(RegisterError::Blob(BlobError::TooLarge { limit })) => {
            let why = format!("the file is larger than the registration limit of {limit} bytes");
            return Err(take::fail(env, ctx, r, Some(entry), None, &why).await);
        }
        Err(RegisterError::Blob(BlobError::Input(e))) => {
            return Err(take::fail(env, ctx, r, Some(entry), None, &format!("the file could not be read: {e}")).await);
        }
        Err(e) => return Err(Taken::Retry { entry: Some(entry), error: format!("storing the bytes failed: {e}") }),
    };
    let unchanged = match file.metadata().await {
        Ok(m) => Seen::of(&m) == r.seen && staged.item().size == r.seen.size,
        Err(_) => false,
    };
    drop(file);
    if !unchanged {
        env.registrar.discard_staged(vec![staged]).await;
        return Err(Taken::Changed);
    }
    Ok((entry, staged))
}

/// Writes every file's `registering` entry, with the hash of its staged bytes, in one transaction.
async fn record_intents(env: &Env, ctx: &FolderCtx, prepared: &[Prepared]) -> Result<(), StoreError> {
    let mut tx = env.store.ingest_tx(ctx.folder.tenant).await?;
    for p in prepared {
        let new = NewInboxEntry {
            id: p.entry.id,
            folder: &ctx.key,
            relative_path: &p.entry.relative_path,
            raw_path: p.entry.raw_path.as_deref(),
            size_bytes: p.r.seen.size,
            file_mtime_ns: p.r.seen.mtime_ns,
            content_sha256: Some(&p.staged.item().sha256),
            status: inbox::REGISTERING,
            reason: None,
            moved_to: None,
            created_by: &env.captured_by,
        };
        inbox::insert(&mut tx, &new).await?;
    }
    tx.commit().await
}

/// Moves the registered files to `processed/` and records their outcomes in one transaction;
/// when that fails, each outcome is recorded alone (with its retries).
async fn finish_batch(
    env: &Env,
    ctx: &FolderCtx,
    files: Vec<(Ready, InboxEntry, Outcome)>,
    out: &mut Vec<(Ready, Taken)>,
) {
    let mut moved = Vec::with_capacity(files.len());
    for (r, entry, o) in files {
        match take::move_registered(ctx, &r).await {
            Ok(to) => moved.push((r, entry, o, to)),
            Err(error) => out.push((r, Taken::Retry { entry: Some(entry), error })),
        }
    }
    if moved.is_empty() {
        return;
    }
    let together = async {
        let mut tx = env.store.ingest_tx(ctx.folder.tenant).await?;
        for (_, entry, o, to) in &moved {
            inbox::finish(&mut tx, entry.id, &take::registered_outcome(env, o, None, to.as_deref())).await?;
        }
        tx.commit().await
    };
    match together.await {
        Ok(()) => {
            for (r, entry, o, to) in moved {
                let taken = take::registered_done(env, ctx, &entry, &o, to.as_deref());
                out.push((r, taken));
            }
        }
        Err(e) => {
            tracing::info!(folder = %ctx.key, files = moved.len(), error = %e,
                "inbox outcomes could not be recorded together; recording each alone.");
            for (r, entry, o, to) in moved {
                let taken = take::record_registered(env, ctx, entry, &o, None, to.as_deref()).await;
                out.push((r, taken));
            }
        }
    }
}
