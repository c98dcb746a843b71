//! What the watcher remembers across restarts, read from qiaccess.inbox_entries at start: the
//! registrations whose outcome was never recorded (`unfinished`), and for read-only folders the
//! size and mtime of every file already taken (`known`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use spine_store::repos::inbox::{self, InboxEntry};
use spine_store::{Store, StoreError};

use super::folder::ResolvedFolder;

#[derive(Debug, Default)]
pub(crate) struct FolderState {
    /// Files to leave alone while their (size, mtime) is unchanged: taken from a read-only
    /// folder, or failed and impossible to move.
    pub known: HashMap<PathBuf, (u64, i64)>,
    /// Entries still `registering`, by path: the next take of the path resolves them.
    pub unfinished: HashMap<PathBuf, InboxEntry>,
}

pub(crate) async fn load(store: &Store, folder: &ResolvedFolder) -> Result<FolderState, StoreError> {
    let key = folder.key();
    let mut tx = store.ingest_tx(folder.tenant).await?;
    let mut state = FolderState::default();
    for e in inbox::unfinished(&mut tx, &key).await? {
        state.unfinished.insert(decode(&e.relative_path, e.raw_path.as_deref()), e);
    }
    if folder.read_only {
        for e in inbox::latest_finished(&mut tx, &key).await? {
            let size = u64::try_from(e.size_bytes).unwrap_or(0);
            state.known.insert(decode(&e.relative_path, e.raw_path.as_deref()), (size, e.file_mtime_ns));
        }
    }
    tx.commit().await?;
    Ok(state)
}

/// A relative path as stored: its text (lossy when not UTF-8) and, only then, its exact bytes.
pub(crate) fn encode(rel: &Path) -> (String, Option<Vec<u8>>) {
    match rel.to_str() {
        Some(s) => (s.to_owned(), None),
        None => (rel.to_string_lossy().into_owned(), Some(raw_bytes(rel))),
    }
}

/// The relative path [`encode`] stored.
pub(crate) fn decode(text: &str, raw: Option<&[u8]>) -> PathBuf {
    match raw {
        Some(bytes) => from_raw_bytes(bytes).unwrap_or_else(|| PathBuf::from(text)),
        None => PathBuf::from(text),
    }
}

#[cfg(unix)]
pub(crate) fn raw_bytes(p: &Path) -> Vec<u8> {
    std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()
}

#[cfg(not(unix))]
pub(crate) fn raw_bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}

#[cfg(unix)]
fn from_raw_bytes(b: &[u8]) -> Option<PathBuf> {
    Some(PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b)))
}

#[cfg(not(unix))]
fn from_raw_bytes(b: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(b).ok().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let p = Path::new("sub/x.csv");
        assert_eq!(encode(p), ("sub/x.csv".to_owned(), None));
        assert_eq!(decode("sub/x.csv", None), p);
    }

    #[cfg(unix)]
    #[test]
    fn invalid_utf8_keeps_its_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"sub/caf\xe9.csv"));
        let (text, raw) = encode(p);
        assert_eq!(text, "sub/caf\u{fffd}.csv");
        assert_eq!(raw.as_deref(), Some(&b"sub/caf\xe9.csv"[..]));
        assert_eq!(decode(&text, raw.as_deref()), p);
    }
}
