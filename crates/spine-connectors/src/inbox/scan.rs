//! Looking at a folder (blocking; run on the blocking pool): what is at a set of relative paths,
//! walking directories below them. Symbolic links are never followed.

use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::ignore::{IgnoreRules, is_excluded};

/// What a stat says about a file: enough to tell that it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    /// Why the entry is not a regular file, when it is not (it is failed, never read).
    pub special: Option<&'static str>,
}

impl Seen {
    pub fn of(m: &Metadata) -> Self {
        Self { size: m.len(), mtime_ns: mtime_ns(m), ino: ino(m), special: special(m) }
    }

    /// Size and mtime, the key a read-only folder remembers a file by.
    pub fn key(&self) -> (u64, i64) {
        (self.size, self.mtime_ns)
    }
}

pub(crate) fn mtime_ns(m: &Metadata) -> i64 {
    let t = m.modified().unwrap_or(UNIX_EPOCH);
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[cfg(unix)]
fn ino(m: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn ino(_: &Metadata) -> u64 {
    0
}

fn special(m: &Metadata) -> Option<&'static str> {
    let t = m.file_type();
    if t.is_file() {
        None
    } else if t.is_symlink() {
        Some("it is a symbolic link, and links are not followed")
    } else {
        Some("it is not a regular file (a device, socket or pipe)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Observation {
    /// A file (or a special entry) that may be taken.
    File { rel: PathBuf, seen: Seen },
    /// A file whose name (or a folder's above it) matches an ignore pattern.
    Ignored { rel: PathBuf },
    /// Nothing is there (any more).
    Gone { rel: PathBuf },
    /// A folder (the root is `""`).
    Dir { rel: PathBuf },
    /// The entry or folder could not be looked at.
    Unreadable { rel: PathBuf, error: String },
}

/// Looks at each of `rels` under `root`. A folder is reported and, when it is the root or
/// `recursive` is set, walked. Ignored folders and the `processed/`, `failed/` trees are skipped.
pub(crate) fn observe(root: &Path, rels: &[PathBuf], rules: &IgnoreRules, recursive: bool) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for rel in rels {
        if is_excluded(rel) {
            continue;
        }
        match fs::symlink_metadata(root.join(rel)) {
            Ok(m) => classify(rel.clone(), &m, rules, recursive, &mut out, &mut dirs),
            Err(e) if e.kind() == io::ErrorKind::NotFound => out.push(Observation::Gone { rel: rel.clone() }),
            Err(e) => out.push(Observation::Unreadable { rel: rel.clone(), error: e.to_string() }),
        }
    }
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(root.join(&dir)) {
            Ok(entries) => entries,
            Err(e) => {
                out.push(Observation::Unreadable { rel: dir, error: e.to_string() });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    out.push(Observation::Unreadable { rel: dir.clone(), error: e.to_string() });
                    break;
                }
            };
            let rel = dir.join(entry.file_name());
            if is_excluded(&rel) {
                continue;
            }
            // DirEntry::metadata does not follow symbolic links.
            match entry.metadata() {
                Ok(m) => classify(rel, &m, rules, recursive, &mut out, &mut dirs),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => out.push(Observation::Unreadable { rel, error: e.to_string() }),
            }
        }
    }
    out
}

fn classify(
    rel: PathBuf,
    m: &Metadata,
    rules: &IgnoreRules,
    recursive: bool,
    out: &mut Vec<Observation>,
    dirs: &mut Vec<PathBuf>,
) {
    let is_root = rel.as_os_str().is_empty();
    if !is_root && rules.matches_path(&rel) {
        if !m.is_dir() {
            out.push(Observation::Ignored { rel });
        }
        return;
    }
    if m.is_dir() {
        if is_root || recursive {
            dirs.push(rel.clone());
        }
        out.push(Observation::Dir { rel });
    } else {
        out.push(Observation::File { seen: Seen::of(m), rel });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::config::DEFAULT_IGNORE;

    fn sorted(mut v: Vec<Observation>) -> Vec<String> {
        let mut names: Vec<String> = v
            .drain(..)
            .map(|o| match o {
                Observation::File { rel, seen } => format!("file {} {}", rel.display(), seen.size),
                Observation::Ignored { rel } => format!("ignored {}", rel.display()),
                Observation::Gone { rel } => format!("gone {}", rel.display()),
                Observation::Dir { rel } => format!("dir {}", rel.display()),
                Observation::Unreadable { rel, .. } => format!("unreadable {}", rel.display()),
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn walks_skipping_ignored_and_own_folders() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for dir in ["sub/deeper", ".git", "processed", "failed"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for (f, n) in
            [("a.csv", 1), ("b.tmp", 2), ("sub/c.txt", 3), ("sub/deeper/d", 4), (".git/x", 5), ("processed/p", 6)]
        {
            fs::write(root.join(f), vec![b'x'; n]).unwrap();
        }
        let rules = IgnoreRules::new(DEFAULT_IGNORE);
        let all = observe(root, &[PathBuf::new()], &rules, true);
        assert_eq!(
            sorted(all),
            [
                "dir ",
                "dir sub",
                "dir sub/deeper",
                "file a.csv 1",
                "file sub/c.txt 3",
                "file sub/deeper/d 4",
                "ignored b.tmp"
            ]
        );
        let flat = observe(root, &[PathBuf::new()], &rules, false);
        assert_eq!(sorted(flat), ["dir ", "dir sub", "file a.csv 1", "ignored b.tmp"]);
        let some = observe(root, &["a.csv".into(), "nope".into(), "processed/p".into()], &rules, true);
        assert_eq!(sorted(some), ["file a.csv 1", "gone nope"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_special_not_followed() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("target"), b"abc").unwrap();
        std::os::unix::fs::symlink(d.path().join("target"), d.path().join("link")).unwrap();
        let obs = observe(d.path(), &["link".into()], &IgnoreRules::new(DEFAULT_IGNORE), true);
        match &obs[..] {
            [Observation::File { seen, .. }] => assert!(seen.special.is_some_and(|s| s.contains("symbolic link"))),
            other => panic!("{other:?}"),
        }
    }
}
