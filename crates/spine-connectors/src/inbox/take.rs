//! The steps of taking a stable file and their outcomes: recovering an entry an interruption
//! left `registering`, moving the file away, recording what became of it. The order of the
//! steps (check, stage the bytes, record the intent, register, move, record the outcome) is in
//! [`super::batch`], which takes several files at once; see the module documentation of
//! [`crate::inbox`] for why they come in this order.

use std::io;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spine_pipeline::register::{RegisterError, Registrar};
use spine_store::blob::BlobError;
use spine_store::repos::inbox::{self, EntryCapture, Finished, InboxEntry, NewInboxEntry};
use spine_store::repos::registration::{Arrival, Registered};
use spine_store::{Store, StoreError};
use tokio::fs::File;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use uuid::Uuid;

use super::folder::ResolvedFolder;
use super::ignore::{FAILED_DIR, PROCESSED_DIR};
use super::mover;
use super::stability::Ready;
use super::state;
use super::stats::InboxStats;

/// Tries at recording the outcome of a registration whose file was already moved.
const FINISH_ATTEMPTS: u32 = 5;

/// What every take needs, shared by all folders.
pub(crate) struct Env {
    pub registrar: Registrar,
    pub store: Store,
    pub stats: InboxStats,
    pub captured_by: String,
}

/// One folder as the take step sees it.
pub(crate) struct FolderCtx {
    pub folder: ResolvedFolder,
    pub key: String,
    pub arrival: Arrival,
}

impl FolderCtx {
    pub fn new(folder: ResolvedFolder, captured_by: &str) -> Self {
        let key = folder.key();
        let arrival = Arrival {
            ingress_kind: "watch_folder",
            source_key: format!("inbox:{key}"),
            source_display_name: format!("Inbox {key}"),
            route: key.clone(),
            device_id: None,
            captured_by: captured_by.to_owned(),
            profile: None,
        };
        Self { folder, key, arrival }
    }
}

/// Where a simulated crash stops a take (tests of the restart protocol).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The intent is recorded; the registration never ran.
    AfterIntent,
    /// The registration committed; the outcome was not recorded and the file was not moved.
    AfterRegister,
}

/// How a take ended.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Registered (or failed) and moved away, or recorded in place in a read-only folder.
    Done,
    /// Failed and could not be moved: leave it alone until it changes.
    Left,
    /// The file changed while it was being taken; watch it settle again.
    Changed,
    /// The file is not there any more.
    Gone,
    /// A transient error (database, blob store, move); the entry (when one was recorded) must be
    /// reused by the next attempt.
    Retry { entry: Option<InboxEntry>, error: String },
    /// A simulated crash.
    Stopped,
}

/// The registration an entry ended with.
pub(super) struct Outcome {
    capture_id: Uuid,
    file_id: Option<Uuid>,
    version: Option<i32>,
    duplicate: bool,
}

impl From<&Registered> for Outcome {
    fn from(r: &Registered) -> Self {
        Self { capture_id: r.capture_id, file_id: Some(r.file_id), version: Some(r.version), duplicate: r.duplicate }
    }
}

impl From<&EntryCapture> for Outcome {
    fn from(c: &EntryCapture) -> Self {
        Self { capture_id: c.capture_id, file_id: c.file_id, version: c.file_version, duplicate: c.is_duplicate }
    }
}

/// The file is not there: an entry it left `registering` is resolved now.
pub(super) async fn gone(env: &Env, ctx: &FolderCtx, prior: Option<InboxEntry>) -> Taken {
    match prior {
        None => Taken::Gone,
        Some(p) => match resolve_unfinished(env, ctx, &p, "the file left the folder").await {
            Ok(()) => Taken::Gone,
            Err(error) => Taken::Retry { entry: Some(p), error },
        },
    }
}

/// A file refused before it was read. An entry the path left `registering` is resolved first
/// (its registration may have committed, for the bytes the path held before).
pub(super) async fn refuse(env: &Env, ctx: &FolderCtx, r: &Ready, prior: Option<InboxEntry>, why: &str) -> Taken {
    if let Some(p) = prior
        && let Err(error) = resolve_unfinished(env, ctx, &p, "the file was replaced").await
    {
        return Taken::Retry { entry: Some(p), error };
    }
    fail(env, ctx, r, None, None, why).await
}

/// Records what became of a `registering` entry without its file (`what` happened to the file:
/// it left the folder, after a take whose last step failed or by someone's hand, or was
/// replaced): its registration if it committed, else a failure.
pub(crate) async fn resolve_unfinished(
    env: &Env,
    ctx: &FolderCtx,
    entry: &InboxEntry,
    what: &str,
) -> Result<(), String> {
    let found = async {
        let mut tx = env.store.ingest_tx(ctx.folder.tenant).await?;
        let found = inbox::capture_for_entry(&mut tx, entry.id, entry.created_at).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(found)
    };
    let found = found.await.map_err(|e| format!("looking up the earlier registration failed: {e}"))?;
    let (registered_note, failed_note) =
        (format!("{what} before the outcome was recorded"), format!("{what} before it was registered"));
    let finished = match &found {
        Some(c) => Finished {
            status: if c.is_duplicate { inbox::DUPLICATE } else { inbox::REGISTERED },
            file_id: c.file_id,
            file_version: c.file_version,
            capture_event_id: Some(c.capture_id),
            reason: Some(&registered_note),
            moved_to: None,
            updated_by: &env.captured_by,
        },
        None => Finished {
            status: inbox::FAILED,
            file_id: None,
            file_version: None,
            capture_event_id: None,
            reason: Some(&failed_note),
            moved_to: None,
            updated_by: &env.captured_by,
        },
    };
    match finish_entry(&env.store, ctx, entry.id, &finished).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(format!("recording the outcome failed: {e}")),
    }
    tracing::info!(folder = %ctx.key, file = %entry.relative_path, entry = %entry.id, registered = found.is_some(),
        what, "inbox entry left registering resolved without its file.");
    Ok(())
}

pub(super) enum Recovery {
    /// The earlier registration committed and is now finished.
    Finished(Taken),
    /// It never committed: register under the same entry.
    Reuse,
    /// It committed for other bytes (the file changed since): register these as a new entry.
    Fresh,
}

/// Resolves an entry left `registering` by a crash or a failed attempt: its capture event (found
/// by the entry id) tells whether the registration committed.
pub(super) async fn recover(
    env: &Env,
    ctx: &FolderCtx,
    r: &Ready,
    prior: &InboxEntry,
    file: &mut File,
) -> Result<Recovery, String> {
    let capture = async {
        let mut tx = env.store.ingest_tx(ctx.folder.tenant).await?;
        let found = inbox::capture_for_entry(&mut tx, prior.id, prior.created_at).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(found)
    };
    let Some(capture) = capture.await.map_err(|e| format!("looking up the earlier registration failed: {e}"))? else {
        return Ok(Recovery::Reuse);
    };
    let sha = hash(file).await.map_err(|e| format!("reading the file failed: {e}"))?;
    let outcome = Outcome::from(&capture);
    if capture.content_sha256.as_deref() == Some(sha.as_str()) {
        tracing::info!(folder = %ctx.key, file = %prior.relative_path, entry = %prior.id,
            "inbox file was registered before an interruption; finishing without registering it again.");
        let note = "registered before an interruption; finished on restart";
        return Ok(Recovery::Finished(finish_registered(env, ctx, r, prior.clone(), &outcome, Some(note)).await));
    }
    let note = "the file changed before it was moved; its new bytes are a new entry";
    let finished = Finished {
        status: if outcome.duplicate { inbox::DUPLICATE } else { inbox::REGISTERED },
        file_id: outcome.file_id,
        file_version: outcome.version,
        capture_event_id: Some(outcome.capture_id),
        reason: Some(note),
        moved_to: None,
        updated_by: &env.captured_by,
    };
    finish_entry(&env.store, ctx, prior.id, &finished)
        .await
        .map_err(|e| format!("recording the earlier outcome failed: {e}"))?;
    Ok(Recovery::Fresh)
}

/// Moves a registered file to `processed/` (unless the folder is read-only) and records the
/// outcome. A failure leaves the entry `registering`, to be resolved by the next attempt.
pub(super) async fn finish_registered(
    env: &Env,
    ctx: &FolderCtx,
    r: &Ready,
    entry: InboxEntry,
    o: &Outcome,
    note: Option<&str>,
) -> Taken {
    match move_registered(ctx, r).await {
        Ok(moved_to) => record_registered(env, ctx, entry, o, note, moved_to.as_deref()).await,
        Err(error) => Taken::Retry { entry: Some(entry), error },
    }
}

/// Moves a registered file to `processed/`; `None` in a read-only folder.
pub(super) async fn move_registered(ctx: &FolderCtx, r: &Ready) -> Result<Option<String>, String> {
    if ctx.folder.read_only {
        return Ok(None);
    }
    move_file(ctx, &r.rel, PROCESSED_DIR, None)
        .await
        .map(Some)
        .map_err(|e| format!("moving to {PROCESSED_DIR}/ failed: {e}"))
}

/// The outcome of a registered file, as recorded.
pub(super) fn registered_outcome<'a>(
    env: &'a Env,
    o: &Outcome,
    note: Option<&'a str>,
    moved_to: Option<&'a str>,
) -> Finished<'a> {
    Finished {
        status: if o.duplicate { inbox::DUPLICATE } else { inbox::REGISTERED },
        file_id: o.file_id,
        file_version: o.version,
        capture_event_id: Some(o.capture_id),
        reason: note,
        moved_to,
        updated_by: &env.captured_by,
    }
}

/// Records the outcome of a registered file that has moved (or stays, read-only), retrying a
/// while before leaving the entry to be resolved later (by the next take of the path, or the
/// next start).
pub(super) async fn record_registered(
    env: &Env,
    ctx: &FolderCtx,
    entry: InboxEntry,
    o: &Outcome,
    note: Option<&str>,
    moved_to: Option<&str>,
) -> Taken {
    let finished = registered_outcome(env, o, note, moved_to);
    let mut attempt = 0;
    while let Err(e) = finish_entry(&env.store, ctx, entry.id, &finished).await {
        attempt += 1;
        if attempt >= FINISH_ATTEMPTS || matches!(e, StoreError::NotFound) {
            return Taken::Retry { entry: Some(entry), error: format!("recording the outcome failed: {e}") };
        }
        tokio::time::sleep(Duration::from_millis(250) * attempt).await;
    }
    registered_done(env, ctx, &entry, o, moved_to)
}

/// Counts and logs a registered file whose outcome is recorded.
pub(super) fn registered_done(
    env: &Env,
    ctx: &FolderCtx,
    entry: &InboxEntry,
    o: &Outcome,
    moved_to: Option<&str>,
) -> Taken {
    env.stats.registered(o.duplicate);
    tracing::info!(folder = %ctx.key, file = %entry.relative_path, file_id = ?o.file_id, version = ?o.version,
        duplicate = o.duplicate, moved_to = moved_to.unwrap_or("-"), "inbox file registered.");
    Taken::Done
}

/// A file that will not be registered: to `failed/` with its reason (unless read-only), and a
/// `failed` entry. `entry` is the intent already recorded, when there is one.
pub(super) async fn fail(
    env: &Env,
    ctx: &FolderCtx,
    r: &Ready,
    entry: Option<InboxEntry>,
    sha: Option<&str>,
    why: &str,
) -> Taken {
    tracing::warn!(folder = %ctx.key, file = %r.rel.to_string_lossy(), reason = why, "inbox file not registered.");
    env.stats.failed();
    let mut moved_to = None;
    if !ctx.folder.read_only {
        let text = format!(
            "Spine did not register this file.\nfile: {}\nfolder: {}\nreason: {why}\nwhen: {}\n",
            r.rel.to_string_lossy(),
            ctx.key,
            Utc::now().to_rfc3339()
        );
        match move_file(ctx, &r.rel, FAILED_DIR, Some(text)).await {
            Ok(to) => moved_to = Some(to),
            Err(e) => tracing::warn!(folder = %ctx.key, file = %r.rel.to_string_lossy(), error = %e,
                "inbox file could not be moved to failed/; it stays until it changes."),
        }
    }
    let entry = entry.unwrap_or_else(|| InboxEntry {
        id: Uuid::now_v7(),
        relative_path: state::encode(&r.rel).0,
        raw_path: state::encode(&r.rel).1,
        size_bytes: 0,
        file_mtime_ns: 0,
        content_sha256: None,
        status: inbox::FAILED.to_owned(),
        created_at: Utc::now(),
    });
    let sha = sha.or(entry.content_sha256.as_deref());
    let recorded =
        record(&env.store, ctx, &env.captured_by, r, &entry, sha, inbox::FAILED, Some(why), moved_to.as_deref()).await;
    if let Err(e) = recorded {
        tracing::warn!(folder = %ctx.key, file = %entry.relative_path, error = %e, "inbox failure could not be recorded.");
    }
    if moved_to.is_none() && !ctx.folder.read_only { Taken::Left } else { Taken::Done }
}

/// Writes `entry` with `status` (a new entry, or a `registering` one taken again or failed).
#[allow(clippy::too_many_arguments)]
pub(super) async fn record(
    store: &Store,
    ctx: &FolderCtx,
    by: &str,
    r: &Ready,
    entry: &InboxEntry,
    sha: Option<&str>,
    status: &str,
    reason: Option<&str>,
    moved_to: Option<&str>,
) -> Result<(), StoreError> {
    let mut tx = store.ingest_tx(ctx.folder.tenant).await?;
    let new = NewInboxEntry {
        id: entry.id,
        folder: &ctx.key,
        relative_path: &entry.relative_path,
        raw_path: entry.raw_path.as_deref(),
        size_bytes: r.seen.size,
        file_mtime_ns: r.seen.mtime_ns,
        content_sha256: sha,
        status,
        reason,
        moved_to,
        created_by: by,
    };
    inbox::insert(&mut tx, &new).await?;
    tx.commit().await
}

pub(super) async fn finish_entry(store: &Store, ctx: &FolderCtx, id: Uuid, f: &Finished<'_>) -> Result<(), StoreError> {
    let mut tx = store.ingest_tx(ctx.folder.tenant).await?;
    inbox::finish(&mut tx, id, f).await?;
    tx.commit().await
}

pub(super) async fn move_file(
    ctx: &FolderCtx,
    rel: &Path,
    dest: &'static str,
    reason: Option<String>,
) -> io::Result<String> {
    let root = ctx.folder.path.clone();
    let rel = rel.to_owned();
    let to = tokio::task::spawn_blocking(move || mover::move_to(&root, &rel, dest, reason.as_deref()))
        .await
        .map_err(io::Error::other)??;
    Ok(to.to_string_lossy().into_owned())
}

/// Context kept with the capture: the entry id (how a crash is resolved) and where it was found.
pub(super) fn details(ctx: &FolderCtx, r: &Ready, entry: &InboxEntry) -> Value {
    let mut d = json!({
        "inbox_entry_id": entry.id,
        "folder": ctx.key,
        "relative_path": entry.relative_path,
        "file_mtime_ns": r.seen.mtime_ns,
        "read_only": ctx.folder.read_only,
    });
    if let Some(raw) = &entry.raw_path {
        d["raw_path_hex"] = Value::String(hex::encode(raw));
        d["name_note"] = Value::String("the name is not valid UTF-8; original_name shows it lossily".into());
    }
    d
}

/// Errors that will not go away by trying again: the file is refused.
pub(super) fn permanent(e: &RegisterError) -> bool {
    matches!(
        e,
        RegisterError::Store(StoreError::Invalid(_) | StoreError::Conflict(_))
            | RegisterError::Blob(BlobError::TooLarge { .. } | BlobError::Input(_) | BlobError::InvalidHash(_))
    )
}

/// The delay before attempt `attempts + 1` after transient errors: 1 s doubling, at most `cap`.
pub(crate) fn backoff(attempts: u32, cap: Duration) -> Duration {
    Duration::from_secs(1u64 << attempts.min(16)).min(cap)
}

/// Opens without following a symbolic link and without blocking on a pipe.
pub(super) async fn open(path: &Path) -> io::Result<File> {
    let mut o = tokio::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    o.open(path).await
}

async fn hash(file: &mut File) -> io::Result<String> {
    file.rewind().await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
