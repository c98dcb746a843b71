//! The local inbox watcher (issue 4 item 5; seed 000 "Local file watcher"): files dropped into a
//! watched folder are registered for the folder's tenant, then moved to `processed/` (or to
//! `failed/` with a `<name>.reason.txt`), or left in place in a read-only folder.
//!
//! # Arrival
//! - Events come from `notify` (one non-recursive watch per folder; subfolders are watched as
//!   they are found), and a full rescan runs at start and every `rescan_secs`, catching whatever
//!   the events missed (overflow, files created before a watch existed, a watcher that was down).
//! - A file is taken once stable: size and mtime unchanged for `settle_ms` (observed that long,
//!   or an mtime that old); a file renamed into the folder is taken at once. The take stats it
//!   again and compares (size, mtime, inode), and compares once more after reading: a file that
//!   changed is put back to settle, and its bytes are not registered.
//! - Ignored names (`ignore`, by default `*.part`, `*.tmp`, `*.crdownload`, `~$*`, `.*`) are
//!   never taken, nor anything in an ignored subfolder or in `processed/` and `failed/`.
//! - Stable files are taken in batches of up to 32 files of one folder, at most
//!   [`DEFAULT_CONCURRENCY`] batches at once (each reads one file at a time); the rest wait in the
//!   tracker, so thousands of files dropped together need no more open files than four. The
//!   files of a batch share the durability of each step (group commit, decision 0027): one
//!   transaction for their intents, one flush of their bytes and one registration transaction
//!   (shared with whatever else registers then), one transaction for their outcomes; a file
//!   that fails a step fails alone.
//!
//! # Outcomes
//! Registered or duplicate (bytes already registered in the tenant: decision 0019) → moved to
//! `processed/<relative path>`; refused (larger than the limit, unreadable, a symbolic link, a
//! device or pipe, a registration the database refuses) → `failed/<relative path>` with a reason
//! file; a name taken there gets a numeric suffix, nothing is overwritten. Transient errors
//! (database, blob store) leave the file where it is and retry with backoff. Names that are not
//! valid UTF-8 are registered under their lossy form (U+FFFD); the capture's details keep the
//! exact bytes (`raw_path_hex`) and the file keeps its exact name under `processed/`.
//!
//! # Restart and crash protocol
//! Every take writes a `registering` row in `qiaccess.inbox_entries` *after* the bytes are staged
//! in the blob store (written and hashed; made durable with the registration's group, decision
//! 0027) and *before* the registration transaction, which puts that row's id in its capture
//! event (`details.inbox_entry_id`); only after the move is the row finished. On start, rows still
//! `registering` are loaded, and the next take of the path resolves them first: a capture with
//! the entry id means the registration committed, so (if the file still has those bytes) it is
//! only moved and the row finished, never registered twice; no capture means it never committed,
//! and the file is registered under the same entry. An entry whose file left the folder (removed
//! while Spine was down, or moved by a take whose last write failed) is resolved the same way
//! after the first complete scan, without a file. A crash before the intent leaves the file in
//! the folder (taken again) and at most an orphan blob (`spine fsck --repair`). Read-only folders
//! remember the (size, mtime) of each finished path and take a file again only when they change.
//! One watcher per folder is assumed: two processes watching one folder could both take a file.

mod batch;
mod config;
mod error;
mod folder;
mod ignore;
mod mover;
mod scan;
mod stability;
mod state;
mod stats;
mod take;
mod watcher;

pub use config::{DEFAULT_IGNORE, DEFAULT_RESCAN_SECS, DEFAULT_SETTLE_MS, InboxSettings, WatchFolder};
pub use error::InboxError;
pub use folder::{DEFAULT_FOLDER, ResolvedFolder, resolve};
pub use ignore::{FAILED_DIR, IgnoreRules, PROCESSED_DIR};
pub use stats::{InboxStats, StatsSnapshot};
#[doc(hidden)]
pub use take::CrashPoint;
pub use watcher::{DEFAULT_CONCURRENCY, InboxWatcher};

/// This machine's name for `watcher:<hostname>` (the kernel's, else `localhost`).
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
