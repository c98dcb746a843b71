//! Taking one stable file: check it is still what was seen, stream it into the blob store,
//! record the intent, register, move it away, record the outcome. See the module documentation
//! of [`crate::inbox`] for why the steps come in this order.

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
use super::scan::Seen;
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
struct Outcome {
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

/// One take of one file. `prior` is the path's entry still `registering` (from a crash or an
/// earlier attempt): it is resolved first, and reused when its registration never committed.
pub(crate) async fn take(
    env: &Env,
    ctx: &FolderCtx,
    r: &Ready,
    prior: Option<InboxEntry>,
    crash: Option<CrashPoint>,
) -> Taken {
    let abs = ctx.folder.path.join(&r.rel);
    match tokio::fs::symlink_metadata(&abs).await {
        Ok(m) if Seen::of(&m) == r.seen => {}
        Ok(_) => return Taken::Changed,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return gone(env, ctx, prior).await,
        Err(e) => return refuse(env, ctx, r, prior, &format!("the file could not be looked at: {e}")).await,
    }
    if let Some(why) = r.seen.special {
        return refuse(env, ctx, r, prior, why).await;
    }
    let mut file = match open(&abs).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return gone(env, ctx, prior).await,
        Err(e) => return refuse(env, ctx, r, prior, &format!("the file could not be opened: {e}")).await,
    };
    match file.metadata().await {
        Ok(m) if m.is_file() && Seen::of(&m) == r.seen => {}
        _ => return Taken::Changed,
    }

    let mut entry = None;
    if let Some(p) = prior {
        match recover(env, ctx, r, &p, &mut file).await {
            Ok(Recovery::Finished(taken)) => return taken,
            Ok(Recovery::Reuse) => entry = Some(p),
            Ok(Recovery::Fresh) => {}
            Err(error) => return Taken::Retry { entry: Some(p), error },
        }
        if let Err(e) = file.rewind().await {
            return Taken::Retry { entry, error: format!("rewinding the file failed: {e}") };
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

    let pending = match env.registrar.put(&entry.relative_path, details(ctx, r, &entry), &mut file).await {
        Ok(p) => p,
        Err(RegisterError::Blob(BlobError::TooLarge { limit })) => {
            let why = format!("the file is larger than the registration limit of {limit} bytes");
            return fail(env, ctx, r, Some(entry), None, &why).await;
        }
        Err(RegisterError::Blob(BlobError::Input(e))) => {
            return fail(env, ctx, r, Some(entry), None, &format!("the file could not be read: {e}")).await;
        }
        Err(e) => return Taken::Retry { entry: Some(entry), error: format!("storing the bytes failed: {e}") },
    };
    let sha = pending.item().sha256.clone();
    let unchanged = match file.metadata().await {
        Ok(m) => Seen::of(&m) == r.seen && pending.item().size == r.seen.size,
        Err(_) => false,
    };
    drop(file);
    if !unchanged {
        env.registrar.discard(vec![pending]).await;
        return Taken::Changed;
    }

    if let Err(e) =
        record(&env.store, ctx, &env.captured_by, r, &entry, Some(&sha), inbox::REGISTERING, None, None).await
    {
        env.registrar.discard(vec![pending]).await;
        return Taken::Retry { entry: Some(entry), error: format!("recording the intent failed: {e}") };
    }
    if crash == Some(CrashPoint::AfterIntent) {
        return Taken::Stopped;
    }
    let registered = match env.registrar.register(ctx.folder.tenant, &ctx.arrival, vec![pending]).await {
        Ok(mut done) if !done.is_empty() => done.remove(0),
        Ok(_) => return Taken::Retry { entry: Some(entry), error: "the registration returned nothing".into() },
        Err(e) if permanent(&e) => {
            return fail(env, ctx, r, Some(entry), Some(&sha), &format!("the registration was refused: {e}")).await;
        }
        Err(e) => return Taken::Retry { entry: Some(entry), error: format!("the registration failed: {e}") },
    };
    if crash == Some(CrashPoint::AfterRegister) {
        return Taken::Stopped;
    }
    finish_registered(env, ctx, r, entry, &Outcome::from(&registered), None).await
}

/// The file is not there: an entry it left `registering` is resolved now.
async fn gone(env: &Env, ctx: &FolderCtx, prior: Option<InboxEntry>) -> Taken {
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
async fn refuse(env: &Env, ctx: &FolderCtx, r: &Ready, prior: Option<InboxEntry>, why: &str) -> Taken {
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

enum Recovery {
    /// The earlier registration committed and is now finished.
    Finished(Taken),
    /// It never committed: register under the same entry.
    Reuse,
    /// It committed for other bytes (the file changed since): register these as a new entry.
    Fresh,
}

/// Resolves an entry left `registering` by a crash or a failed attempt: its capture event (found
/// by the entry id) tells whether the registration committed.
async fn recover(
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
async fn finish_registered(
    env: &Env,
    ctx: &FolderCtx,
    r: &Ready,
    entry: InboxEntry,
    o: &Outcome,
    note: Option<&str>,
) -> Taken {
    let moved_to = if ctx.folder.read_only {
        None
    } else {
        match move_file(ctx, &r.rel, PROCESSED_DIR, None).await {
            Ok(to) => Some(to),
            Err(e) => {
                return Taken::Retry { entry: Some(entry), error: format!("moving to {PROCESSED_DIR}/ failed: {e}") };
            }
        }
    };
    let finished = Finished {
        status: if o.duplicate { inbox::DUPLICATE } else { inbox::REGISTERED },
        file_id: o.file_id,
        file_version: o.version,
        capture_event_id: Some(o.capture_id),
        reason: note,
        moved_to: moved_to.as_deref(),
        updated_by: &env.captured_by,
    };
    // The file has moved: retry this step itself for a while before leaving the entry to be
    // resolved later (by the next take of the path, or the next start).
    let mut attempt = 0;
    while let Err(e) = finish_entry(&env.store, ctx, entry.id, &finished).await {
        attempt += 1;
        if attempt >= FINISH_ATTEMPTS || matches!(e, StoreError::NotFound) {
            return Taken::Retry { entry: Some(entry), error: format!("recording the outcome failed: {e}") };
        }
        tokio::time::sleep(Duration::from_millis(250) * attempt).await;
    }
    env.stats.registered(o.duplicate);
    tracing::info!(folder = %ctx.key, file = %entry.relative_path, file_id = ?o.file_id, version = ?o.version,
        duplicate = o.duplicate, moved_to = moved_to.as_deref().unwrap_or("-"), "inbox file registered.");
    Taken::Done
}

/// A file that will not be registered: to `failed/` with its reason (unless read-only), and a
/// `failed` entry. `entry` is the intent already recorded, when there is one.
async fn fail(env: &Env, ctx: &FolderCtx, r: &Ready, entry: Option<InboxEntry>, sha: Option<&str>, why: &str) -> Taken {
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
async fn record(
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

async fn finish_entry(store: &Store, ctx: &FolderCtx, id: Uuid, f: &Finished<'_>) -> Result<(), StoreError> {
    let mut tx = store.ingest_tx(ctx.folder.tenant).await?;
    inbox::finish(&mut tx, id, f).await?;
    tx.commit().await
}

async fn move_file(ctx: &FolderCtx, rel: &Path, dest: &'static str, reason: Option<String>) -> io::Result<String> {
    let root = ctx.folder.path.clone();
    let rel = rel.to_owned();
    let to = tokio::task::spawn_blocking(move || mover::move_to(&root, &rel, dest, reason.as_deref()))
        .await
        .map_err(io::Error::other)??;
    Ok(to.to_string_lossy().into_owned())
}

/// Context kept with the capture: the entry id (how a crash is resolved) and where it was found.
fn details(ctx: &FolderCtx, r: &Ready, entry: &InboxEntry) -> Value {
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
fn permanent(e: &RegisterError) -> bool {
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
async fn open(path: &Path) -> io::Result<File> {
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
