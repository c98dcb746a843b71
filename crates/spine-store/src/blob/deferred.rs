//! Staged puts: a put whose flush is left to a group (decision 0027).
//!
//! [`BlobStore::stage`] streams and hashes like [`BlobStore::put`], but on the local store a
//! small item's temp file is only written, not fsynced nor linked: it becomes durable in
//! [`flush_staged`], which flushes the data of a whole group of temp files at once, links each
//! into place, and flushes once more for the new names (on Linux two `syncfs` calls per group
//! instead of two fsyncs per file). Items larger than [`GROUP_FLUSH_MAX`], and every S3 put (an
//! S3 put is durable when it returns), are durable when `stage` returns. Until it is flushed, a
//! staged item is not a blob: dropping it removes its temp file, and no reader can see it.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncRead;

use super::local::{LocalBlobs, TempFile, blocking, link_into_place};
use super::{BlobError, BlobStore, PutBlob};

/// Larger staged items fsync and link themselves (streaming in constant memory as any put):
/// a group flush should not wait for their data.
pub const GROUP_FLUSH_MAX: u64 = 1024 * 1024;

/// The bytes of one staged put.
#[derive(Debug)]
pub enum StagedBlob {
    /// Already a durable blob (large items, S3).
    Durable(PutBlob),
    /// Written to a temp file that is not durable yet; see [`flush_staged`].
    Unsynced(UnsyncedBlob),
}

/// A temp file of the local store holding a hashed item, waiting for its group's flush.
pub struct UnsyncedBlob {
    store: LocalBlobs,
    sha256: String,
    size: u64,
    tmp: TempFile,
}

impl std::fmt::Debug for UnsyncedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsyncedBlob").field("sha256", &self.sha256).field("size", &self.size).finish()
    }
}

impl StagedBlob {
    pub fn sha256(&self) -> &str {
        match self {
            StagedBlob::Durable(p) => &p.sha256,
            StagedBlob::Unsynced(u) => &u.sha256,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            StagedBlob::Durable(p) => p.size,
            StagedBlob::Unsynced(u) => u.size,
        }
    }
}

impl BlobStore {
    /// Stores the reader's bytes like [`BlobStore::put`], leaving a small item's flush to
    /// [`flush_staged`] (see the module documentation).
    pub async fn stage(
        &self,
        reader: impl AsyncRead + Unpin + Send,
        max_size: Option<u64>,
    ) -> Result<StagedBlob, BlobError> {
        match self {
            BlobStore::Local(s) => s.stage(reader, max_size).await,
            BlobStore::S3(s) => s.put(reader, max_size).await.map(StagedBlob::Durable),
        }
    }
}

impl LocalBlobs {
    pub(crate) async fn stage(
        &self,
        reader: impl AsyncRead + Unpin + Send,
        max_size: Option<u64>,
    ) -> Result<StagedBlob, BlobError> {
        let (tmp, file, sha256, size) = self.write_temp(reader, max_size).await?;
        if size > GROUP_FLUSH_MAX {
            file.sync_all().await.map_err(BlobError::io("fsync of a temp file"))?;
            drop(file);
            let created = self.publish_temp(&tmp, &sha256, size).await?;
            drop(tmp);
            return Ok(StagedBlob::Durable(PutBlob { sha256, size, created }));
        }
        drop(file);
        Ok(StagedBlob::Unsynced(UnsyncedBlob { store: self.clone(), sha256, size, tmp }))
    }
}

/// Makes a group of staged items durable blobs, in order: one flush of every temp file's data,
/// a link of each into place (`created = false` when the blob existed, also for a second item
/// of the group with the same bytes), one flush of the new names. A failed flush fails every
/// item that needed it (and removes the blobs the group created); durable items pass through.
pub async fn flush_staged(items: Vec<StagedBlob>) -> Vec<Result<PutBlob, BlobError>> {
    let mut out: Vec<Option<Result<PutBlob, BlobError>>> = Vec::with_capacity(items.len());
    let mut unsynced = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            StagedBlob::Durable(p) => out.push(Some(Ok(p))),
            StagedBlob::Unsynced(u) => {
                out.push(None);
                unsynced.push((i, u));
            }
        }
    }
    if !unsynced.is_empty()
        && let Ok(flushed) = blocking(move || Ok(flush_group(unsynced))).await
    {
        for (i, r) in flushed {
            out[i] = Some(r);
        }
    }
    // Only when the blocking task itself failed (its temp files are gone with it).
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(group_error("a blob flush", "the flush task failed")))).collect()
}

fn group_error(context: &str, msg: &str) -> BlobError {
    BlobError::Io { context: context.to_owned(), source: io::Error::other(msg.to_owned()) }
}

/// The blocking part of [`flush_staged`]; returns each item's index with its result.
fn flush_group(items: Vec<(usize, UnsyncedBlob)>) -> Vec<(usize, Result<PutBlob, BlobError>)> {
    let roots: BTreeSet<PathBuf> = items.iter().map(|(_, u)| u.store.root().to_path_buf()).collect();
    let temps: Vec<&Path> = items.iter().map(|(_, u)| u.tmp.0.as_path()).collect();
    if let Err(e) = sync_data(&roots, &temps) {
        let msg = e.to_string();
        return items.into_iter().map(|(i, _)| (i, Err(group_error("flushing staged blobs", &msg)))).collect();
    }
    let mut linked = Vec::with_capacity(items.len());
    let mut dirs = BTreeSet::new();
    for (i, u) in items {
        let target = u.store.path_of(&u.sha256);
        let r = link_into_place(u.store.root(), &u.tmp.0, &target, u.size, false);
        if let Ok(true) = r
            && let Some(shard) = target.parent()
        {
            dirs.insert(shard.to_path_buf());
        }
        linked.push((i, r.map(|created| PutBlob { sha256: u.sha256.clone(), size: u.size, created }), target));
        drop(u); // removes the temp name; a linked blob stays
    }
    if let Err(e) = sync_names(&roots, &dirs) {
        let msg = e.to_string();
        return linked
            .into_iter()
            .map(|(i, r, target)| {
                if let Ok(PutBlob { created: true, .. }) = r {
                    let _ = std::fs::remove_file(&target);
                }
                (i, Err(group_error("flushing new blob names", &msg)))
            })
            .collect();
    }
    linked.into_iter().map(|(i, r, _)| (i, r)).collect()
}

/// Up to this many files (or shard directories) a group fsyncs each; more, and one `syncfs`
/// per store is cheaper. A `syncfs` also writes back every other dirty page of the file system:
/// a large upload still being written, a database's pages; a small group would wait for those.
const PER_FILE_MAX: usize = 8;

/// Makes the temp files' data durable: `syncfs` of each store's file system for a large group on
/// Linux, else an fsync per file.
fn sync_data(roots: &BTreeSet<PathBuf>, temps: &[&Path]) -> io::Result<()> {
    if cfg!(target_os = "linux") && temps.len() > PER_FILE_MAX {
        return roots.iter().try_for_each(|r| sync_fs(r));
    }
    temps.iter().try_for_each(|t| std::fs::File::open(t)?.sync_all())
}

/// Makes the new names durable: `syncfs` again for a large group on Linux, else an fsync of each
/// shard directory that gained a name and of its parents.
fn sync_names(roots: &BTreeSet<PathBuf>, dirs: &BTreeSet<PathBuf>) -> io::Result<()> {
    if cfg!(target_os = "linux") && dirs.len() > PER_FILE_MAX {
        return roots.iter().try_for_each(|r| sync_fs(r));
    }
    let mut all = BTreeSet::new();
    for d in dirs {
        all.insert(d.clone());
        if let Some(ab) = d.parent() {
            all.insert(ab.to_path_buf());
            if let Some(base) = ab.parent() {
                all.insert(base.to_path_buf());
            }
        }
    }
    all.iter().try_for_each(|d| std::fs::File::open(d)?.sync_all())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn sync_fs(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let d = std::fs::File::open(dir)?;
    // SAFETY: `d` is an open descriptor for the whole call; syncfs only reads it.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn sync_fs(_dir: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
