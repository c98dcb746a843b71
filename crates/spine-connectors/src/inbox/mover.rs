//! Moving taken files out of the way (blocking; run on the blocking pool): to
//! `processed/<relative path>`, or to `failed/<relative path>` next to a `<name>.reason.txt`. A
//! name already taken gets a numeric suffix (`x.csv` → `x-1.csv`); nothing is ever overwritten:
//! the file is hard-linked into place (which fails on an existing name) and then unlinked.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Most suffixes tried before giving up.
const MAX_SUFFIX: u32 = 10_000;

/// Moves `root/rel` to `root/<dest>/<rel>` (with a suffix on a clash), writing `reason` (when
/// given) to `<that name>.reason.txt` first. Returns the new path relative to `root`.
pub(crate) fn move_to(root: &Path, rel: &Path, dest: &str, reason: Option<&str>) -> io::Result<PathBuf> {
    let src = root.join(rel);
    let name = rel.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let parent_rel = Path::new(dest).join(rel.parent().unwrap_or(Path::new("")));
    fs::create_dir_all(root.join(&parent_rel))?;
    for n in 0..MAX_SUFFIX {
        let candidate = parent_rel.join(with_suffix(name, n));
        let dst = root.join(&candidate);
        let reason_file = reason.map(|_| reason_path(&dst));
        if let (Some(text), Some(path)) = (reason, &reason_file) {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut f) => f.write_all(text.as_bytes())?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        match place(&src, &dst) {
            Ok(()) => return Ok(candidate),
            Err(e) => {
                if let Some(path) = &reason_file {
                    let _ = fs::remove_file(path);
                }
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{MAX_SUFFIX} names taken for {}", name.to_string_lossy()),
    ))
}

/// `x.csv` with n = 2 → `x-2.csv`; n = 0 keeps the name.
fn with_suffix(name: &std::ffi::OsStr, n: u32) -> OsString {
    if n == 0 {
        return name.to_owned();
    }
    let p = Path::new(name);
    let mut out = OsString::new();
    match (p.file_stem(), p.extension()) {
        (Some(stem), Some(ext)) => {
            out.push(stem);
            out.push(format!("-{n}."));
            out.push(ext);
        }
        _ => {
            out.push(name);
            out.push(format!("-{n}"));
        }
    }
    out
}

fn reason_path(dst: &Path) -> PathBuf {
    let mut s = dst.as_os_str().to_owned();
    s.push(".reason.txt");
    PathBuf::from(s)
}

/// Gives `src` the name `dst` without replacing anything there. Where hard links are not
/// possible (another file system, no link support), falls back to a checked rename.
fn place(src: &Path, dst: &Path) -> io::Result<()> {
    match fs::hard_link(src, dst) {
        Ok(()) => match fs::remove_file(src) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                let _ = fs::remove_file(dst);
                Err(e)
            }
            _ => Ok(()),
        },
        Err(e) if matches!(e.kind(), io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound) => Err(e),
        Err(_) => {
            if fs::symlink_metadata(dst).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(src, dst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        let s = |n: &str, i| with_suffix(std::ffi::OsStr::new(n), i).to_string_lossy().into_owned();
        assert_eq!(s("x.csv", 0), "x.csv");
        assert_eq!(s("x.csv", 1), "x-1.csv");
        assert_eq!(s("a.tar.gz", 2), "a.tar-2.gz");
        assert_eq!(s("README", 3), "README-3");
    }

    #[test]
    fn never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("sub")).unwrap();
        for (i, body) in ["one", "two", "three"].iter().enumerate() {
            fs::write(root.join("sub/x.csv"), body).unwrap();
            let reason = (i == 2).then_some("too large");
            let dest = if i == 2 { "failed" } else { "processed" };
            let to = move_to(root, Path::new("sub/x.csv"), dest, reason).unwrap();
            let want = ["processed/sub/x.csv", "processed/sub/x-1.csv", "failed/sub/x.csv"][i];
            assert_eq!(to, Path::new(want));
            assert_eq!(fs::read_to_string(root.join(&to)).unwrap(), *body);
        }
        assert!(!root.join("sub/x.csv").exists());
        assert_eq!(fs::read_to_string(root.join("processed/sub/x.csv")).unwrap(), "one");
        assert_eq!(fs::read_to_string(root.join("failed/sub/x.csv.reason.txt")).unwrap(), "too large");
        // A reason file in the way also moves the failed file to the next name.
        fs::write(root.join("failed/y.reason.txt"), "old").unwrap();
        fs::write(root.join("y"), "new").unwrap();
        assert_eq!(move_to(root, Path::new("y"), "failed", Some("r")).unwrap(), Path::new("failed/y-1"));
        assert_eq!(fs::read_to_string(root.join("failed/y.reason.txt")).unwrap(), "old");
    }
}
