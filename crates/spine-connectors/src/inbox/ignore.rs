//! Ignored names: glob-ish patterns (`*` any run, `?` one character, ASCII case ignored) matched
//! against each name in a relative path, and the watcher's own subfolders.

use std::ffi::OsStr;
use std::path::{Component, Path};

/// Where taken files go, at the top of every watched folder; never scanned.
pub const PROCESSED_DIR: &str = "processed";
pub const FAILED_DIR: &str = "failed";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoreRules {
    patterns: Vec<Vec<char>>,
}

impl IgnoreRules {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        Self { patterns: patterns.iter().map(|p| p.as_ref().chars().map(fold).collect()).collect() }
    }

    /// True when `name` (one path component) matches a pattern. Names that are not UTF-8 are
    /// matched in their lossy form.
    pub fn matches(&self, name: &OsStr) -> bool {
        let name: Vec<char> = name.to_string_lossy().chars().map(fold).collect();
        self.patterns.iter().any(|p| glob(p, &name))
    }

    /// True when any name of the relative path matches.
    pub fn matches_path(&self, rel: &Path) -> bool {
        rel.components().any(|c| matches!(c, Component::Normal(n) if self.matches(n)))
    }
}

/// True for the folder's own `processed/` and `failed/` trees (relative paths).
pub fn is_excluded(rel: &Path) -> bool {
    match rel.components().next() {
        Some(Component::Normal(first)) => first == PROCESSED_DIR || first == FAILED_DIR,
        _ => false,
    }
}

fn fold(c: char) -> char {
    c.to_ascii_lowercase()
}

/// Wildcard match with backtracking on the last `*` (linear for these patterns).
fn glob(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::config::DEFAULT_IGNORE;

    #[test]
    fn default_patterns() {
        let r = IgnoreRules::new(DEFAULT_IGNORE);
        for name in ["x.csv.part", "a.TMP", "f.crdownload", "~$report.docx", ".hidden", ".", ".x.csv.Ab12"] {
            assert!(r.matches(OsStr::new(name)), "{name}");
        }
        for name in ["x.csv", "part", "tmp.csv", "report~$.docx", "a.partial", "x.csv.part.csv"] {
            assert!(!r.matches(OsStr::new(name)), "{name}");
        }
        assert!(r.matches_path(Path::new("sub/.git/config")));
        assert!(!r.matches_path(Path::new("sub/data/x.csv")));
    }

    #[test]
    fn wildcards() {
        let r = IgnoreRules::new(&["a*b*c", "??.log", "*"]);
        assert!(r.matches(OsStr::new("anything")));
        let r = IgnoreRules::new(&["a*b*c", "??.log"]);
        assert!(r.matches(OsStr::new("abc")) && r.matches(OsStr::new("aXXbYYc")) && r.matches(OsStr::new("ab.log")));
        assert!(!r.matches(OsStr::new("abcd")) && !r.matches(OsStr::new("abc.log")) && !r.matches(OsStr::new("acb")));
    }

    #[test]
    fn own_folders_are_excluded_at_the_top_only() {
        assert!(is_excluded(Path::new("processed/x.csv")) && is_excluded(Path::new("failed")));
        assert!(!is_excluded(Path::new("sub/processed/x.csv")) && !is_excluded(Path::new("x.csv")));
    }
}
