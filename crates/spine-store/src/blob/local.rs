//! Blobs on the local file system: `<root>/sha256/ab/cd/<hex>`, writes in progress in
//! `<root>/tmp/<uuid>.part` (same file system, so publishing is a link, never a copy).
//!
//! A put writes and fsyncs the temp file, then hard-links it to its final name: the link fails
//! when the blob already exists (dedupe without a window where two writers overwrite each other),
//! and the shard directory is fsynced so the new name survives a crash. The temp name is removed
//! by [`TempFile`]'s drop whatever happens, so an error or a dropped future leaves nothing.
//!
//! A staged put ([`super::deferred`], decision 0027) writes the temp file without the fsync and
//! leaves the flush and the link to a group: one file-system flush for the data of every temp
//! file of the group, the links, one more flush for the new names.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::ingest::Ingest;
use super::{BlobError, BlobInfo, PutBlob, TempEntry, check_hash};

/// A put gathers up to this many bytes in memory before it writes any (see
/// [`LocalBlobs::write_temp`]): small enough that many uploads in flight stay cheap in memory.
const IN_MEMORY: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: Arc<PathBuf>,
}

/// A temp file that is removed when dropped (after a successful put it is already linked into
/// place, and removing the temp name leaves the blob).
pub(crate) struct TempFile(pub(crate) PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "blob store: removing a temp file failed");
        }
    }
}

impl LocalBlobs {
    /// Creates `<root>/sha256` and `<root>/tmp` when missing.
    pub async fn open(root: &Path) -> Result<Self, BlobError> {
        for sub in ["sha256", "tmp"] {
            let dir = root.join(sub);
            tokio::fs::create_dir_all(&dir).await.map_err(BlobError::io(format!("creating {}", dir.display())))?;
        }
        Ok(Self { root: Arc::new(root.to_path_buf()) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob's path; `sha256` must have passed [`check_hash`].
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(&sha256[..2]).join(&sha256[2..4]).join(sha256)
    }

    pub(crate) async fn put(
        &self,
        reader: impl AsyncRead + Unpin + Send,
        max_size: Option<u64>,
    ) -> Result<PutBlob, BlobError> {
        let (tmp, file, sha256, size) = self.write_temp(reader, max_size).await?;
        file.sync_all().await.map_err(BlobError::io("fsync of a temp file"))?;
        drop(file);
        let created = self.publish_temp(&tmp, &sha256, size).await?;
        drop(tmp);
        Ok(PutBlob { sha256, size, created })
    }

    /// Streams the reader into a new temp file (written, not fsynced); returns it with its open
    /// handle, hash and size. The first [`IN_MEMORY`] bytes are gathered in memory: a body that
    /// ends within them (most files) is written by one blocking call that creates, fills and
    /// hands back the file, instead of a blocking call per chunk.
    pub(crate) async fn write_temp(
        &self,
        mut reader: impl AsyncRead + Unpin + Send,
        max_size: Option<u64>,
    ) -> Result<(TempFile, tokio::fs::File, String, u64), BlobError> {
        let tmp = TempFile(self.root.join("tmp").join(format!("{}.part", uuid::Uuid::new_v4().simple())));
        let mut ingest = Ingest::new(max_size);
        let mut buf = Ingest::buffer();
        let mut head: Vec<u8> = Vec::new();
        let ended = loop {
            let n = ingest.read(&mut reader, &mut buf).await?;
            if n == 0 {
                break true;
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() >= IN_MEMORY {
                break false;
            }
        };
        let path = tmp.0.clone();
        let file = blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444) // blobs are immutable; the open handle can still write
                .open(&path)
                .map_err(BlobError::io(format!("creating {}", path.display())))?;
            file.write_all(&head).map_err(BlobError::io("writing a temp file"))?;
            Ok(file)
        })
        .await?;
        let mut file = tokio::fs::File::from_std(file);
        if !ended {
            let mut writeback = Writeback::default();
            loop {
                ingest.grow(&mut buf);
                let n = ingest.read(&mut reader, &mut buf).await?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).await.map_err(BlobError::io("writing a temp file"))?;
                writeback.wrote(&file, n as u64);
            }
            file.flush().await.map_err(BlobError::io("writing a temp file"))?;
        }
        let (sha256, size) = ingest.finish();
        Ok((tmp, file, sha256, size))
    }

    /// Links a durable temp file into place and fsyncs its shard directory; false when the
    /// blob already existed.
    pub(crate) async fn publish_temp(&self, tmp: &TempFile, sha256: &str, size: u64) -> Result<bool, BlobError> {
        let target = self.path_of(sha256);
        let tmp_path = tmp.0.clone();
        let root = self.root.clone();
        blocking(move || publish(&root, &tmp_path, &target, size)).await
    }

    pub(crate) async fn open_blob(&self, sha256: &str) -> Result<tokio::fs::File, BlobError> {
        match tokio::fs::File::open(self.path_of(sha256)).await {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BlobError::NotFound(sha256.to_owned())),
            Err(e) => Err(BlobError::io(format!("opening blob {sha256}"))(e)),
        }
    }

    pub(crate) async fn stat(&self, sha256: &str) -> Result<Option<BlobInfo>, BlobError> {
        match tokio::fs::metadata(self.path_of(sha256)).await {
            Ok(m) => Ok(Some(BlobInfo { sha256: sha256.to_owned(), size: m.len(), modified: modified(&m) })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::io(format!("stat of blob {sha256}"))(e)),
        }
    }

    pub(crate) async fn delete(&self, sha256: &str) -> Result<bool, BlobError> {
        let path = self.path_of(sha256);
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(path.parent().expect("a blob path has a parent"))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::io(format!("removing {}", path.display()))(e)),
        })
        .await
    }

    pub(crate) async fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<BlobInfo>, BlobError> {
        let base = self.root.join("sha256");
        let after = after.map(str::to_owned);
        blocking(move || list_page(&base, after.as_deref(), limit)).await
    }

    pub(crate) async fn sweep_temp(&self, older_than: Duration, remove: bool) -> Result<Vec<TempEntry>, BlobError> {
        let dir = self.root.join("tmp");
        blocking(move || {
            let Some(cutoff) = SystemTime::now().checked_sub(older_than) else { return Ok(Vec::new()) };
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(BlobError::io(format!("reading {}", dir.display())))? {
                let entry = entry.map_err(BlobError::io(format!("reading {}", dir.display())))?;
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() || meta.modified().map(|m| m > cutoff).unwrap_or(true) {
                    continue;
                }
                if remove {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(BlobError::io(format!("removing {}", entry.path().display()))(e)),
                    }
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                out.push(TempEntry { name, size: meta.len(), modified: modified(&meta) });
            }
            Ok(out)
        })
        .await
    }
}

/// Links the finished temp file to `target` and fsyncs its directory; false when the blob
/// already existed.
fn publish(root: &Path, tmp: &Path, target: &Path, size: u64) -> Result<bool, BlobError> {
    let created = link_into_place(root, tmp, target, size, true)?;
    if created {
        // The shard and its parents: a staged group may have created them without a flush yet
        // (an fsync of a directory with nothing new to write is cheap).
        let mut dir = target.parent();
        while let Some(d) = dir {
            sync_dir(d)?;
            if d.parent() == Some(root) {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(created)
}

/// Links the finished temp file to `target` (creating its shard directories, fsyncing their
/// parents when `sync_new_dirs`), without making the new name durable; false when the blob
/// already existed.
pub(crate) fn link_into_place(
    root: &Path,
    tmp: &Path,
    target: &Path,
    size: u64,
    sync_new_dirs: bool,
) -> Result<bool, BlobError> {
    let shard = target.parent().expect("a blob path has a parent");
    ensure_dir(root, shard, sync_new_dirs)?;
    match std::fs::hard_link(tmp, target) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let existing = std::fs::metadata(target).map_err(BlobError::io(format!("stat of {}", target.display())))?;
            if existing.len() == size {
                return Ok(false);
            }
            // A damaged blob (wrong length): the new, verified bytes replace it.
            tracing::warn!(blob = %target.display(), "blob store: replacing a blob of the wrong size");
            std::fs::rename(tmp, target).map_err(BlobError::io(format!("renaming into {}", target.display())))?;
        }
        // File systems without hard links: rename, which may replace an identical blob.
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::PermissionDenied) => {
            if target.exists() {
                return Ok(false);
            }
            std::fs::rename(tmp, target).map_err(BlobError::io(format!("renaming into {}", target.display())))?;
        }
        Err(e) => return Err(BlobError::io(format!("linking {}", target.display()))(e)),
    }
    Ok(true)
}

/// Creates `dir` (below `root`) when missing, fsyncing each parent that gained an entry when
/// `sync` (a group flush makes them durable otherwise).
fn ensure_dir(root: &Path, dir: &Path, sync: bool) -> Result<(), BlobError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(BlobError::io(format!("creating {}", dir.display())))?;
    if !sync {
        return Ok(());
    }
    let mut p = dir.parent();
    while let Some(parent) = p {
        sync_dir(parent)?;
        if parent == root {
            break;
        }
        p = parent.parent();
    }
    Ok(())
}

/// Starts the disk writing a large body's bytes while the rest still arrives, so that the fsync
/// at its end waits for the last few MiB instead of all of them (Linux `sync_file_range`, which
/// only queues the writes; elsewhere nothing). Every [`Writeback::EVERY`] bytes, the range
/// written before the latest chunk (the latest may still be in tokio's write buffer).
#[derive(Default)]
struct Writeback {
    written: u64,
    queued: u64,
}

impl Writeback {
    const EVERY: u64 = 8 * 1024 * 1024;

    fn wrote(&mut self, file: &tokio::fs::File, n: u64) {
        let end = self.written;
        self.written += n;
        if end - self.queued < Self::EVERY {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            let (from, len) = (self.queued as libc::off64_t, (end - self.queued) as libc::off64_t);
            // SAFETY: the descriptor is open for the whole call; the call only queues writes.
            // A failure is harmless: the final fsync writes whatever is left.
            #[allow(unsafe_code)]
            unsafe {
                libc::sync_file_range(file.as_raw_fd(), from, len, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = file;
        self.queued = end;
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BlobError::io(format!("fsync of directory {}", dir.display())))
}

/// Entries of `dir` whose names pass `keep`, sorted; an absent directory is empty.
fn sorted_names(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, BlobError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BlobError::io(format!("reading {}", dir.display()))(e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(BlobError::io(format!("reading {}", dir.display())))?;
        if let Some(n) = entry.file_name().to_str()
            && keep(n)
        {
            names.push(n.to_owned());
        }
    }
    names.sort_unstable();
    Ok(names)
}

fn is_shard(n: &str) -> bool {
    n.len() == 2 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn list_page(base: &Path, after: Option<&str>, limit: usize) -> Result<Vec<BlobInfo>, BlobError> {
    let mut out = Vec::new();
    let after = after.unwrap_or("");
    let (a1, a2) = (after.get(..2).unwrap_or(""), after.get(2..4).unwrap_or(""));
    for ab in sorted_names(base, is_shard)? {
        if ab.as_str() < a1 {
            continue;
        }
        for cd in sorted_names(&base.join(&ab), is_shard)? {
            if ab == a1 && cd.as_str() < a2 {
                continue;
            }
            let dir = base.join(&ab).join(&cd);
            let prefix = format!("{ab}{cd}");
            for name in sorted_names(&dir, |n| n > after && n.starts_with(&prefix) && check_hash(n).is_ok())? {
                let meta = match std::fs::metadata(dir.join(&name)) {
                    Ok(m) => m,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue, // deleted meanwhile
                    Err(e) => return Err(BlobError::io(format!("stat of blob {name}"))(e)),
                };
                out.push(BlobInfo { sha256: name, size: meta.size(), modified: modified(&meta) });
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

fn modified(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now())
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::io("a blocking blob store task")(std::io::Error::other(e.to_string())))?
}
