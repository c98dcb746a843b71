//! The watcher's settings as they appear in `spine.toml` (`[inbox]`), with their defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Name patterns ignored by default: partial downloads and temp files (`*.part`, `*.tmp`,
/// `*.crdownload`), Office lock files (`~$*`) and dotfiles (`.*`, also rsync's temp names).
pub const DEFAULT_IGNORE: &[&str] = &["*.part", "*.tmp", "*.crdownload", "~$*", ".*"];
pub const DEFAULT_SETTLE_MS: u64 = 2000;
pub const DEFAULT_RESCAN_SECS: u64 = 60;

/// `[inbox]`: which folders are watched, for which tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboxSettings {
    /// Run the watcher at all.
    pub enabled: bool,
    /// Also watch `<data_dir>/inbox` for the first tenant (the one `spine up` bootstraps), with
    /// the default options.
    pub default_folder: bool,
    /// Further watched folders, each for one tenant.
    pub folders: Vec<WatchFolder>,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self { enabled: true, default_folder: true, folders: Vec::new() }
    }
}

/// One watched folder (`[[inbox.folders]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchFolder {
    /// The folder (relative paths are taken from the working directory); created when missing
    /// (unless read-only).
    pub path: PathBuf,
    /// The tenant that owns what arrives, by slug or id.
    pub tenant: String,
    /// Leave files in place (no `processed/`, `failed/`); the watcher's state remembers each
    /// file's size and mtime, and registers it again when they change.
    #[serde(default)]
    pub read_only: bool,
    /// A file is taken once its size and mtime have not changed for this long; a file moved in
    /// atomically (a rename) is taken at once.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// File and folder name patterns never taken: `*` any run of characters, `?` one character,
    /// matched against each name in the path, ignoring ASCII case.
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// Full rescans, which catch events the file system did not report, this often.
    #[serde(default = "default_rescan_secs")]
    pub rescan_secs: u64,
    /// Take files in subfolders too (their relative path is kept under `processed/`).
    #[serde(default = "default_true")]
    pub recursive: bool,
}

impl WatchFolder {
    /// A folder with the default options.
    pub fn new(path: impl Into<PathBuf>, tenant: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            tenant: tenant.into(),
            read_only: false,
            settle_ms: DEFAULT_SETTLE_MS,
            ignore: default_ignore(),
            rescan_secs: DEFAULT_RESCAN_SECS,
            recursive: true,
        }
    }
}

fn default_settle_ms() -> u64 {
    DEFAULT_SETTLE_MS
}

fn default_rescan_secs() -> u64 {
    DEFAULT_RESCAN_SECS
}

fn default_true() -> bool {
    true
}

fn default_ignore() -> Vec<String> {
    DEFAULT_IGNORE.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_is_not_given() {
        let s: InboxSettings =
            serde_json::from_str(r#"{"folders": [{"path": "/srv/drop", "tenant": "acme"}]}"#).unwrap();
        assert!(s.enabled && s.default_folder);
        assert_eq!(s.folders, vec![WatchFolder::new("/srv/drop", "acme")]);
        assert_eq!(s.folders[0].ignore, DEFAULT_IGNORE);
        assert_eq!(InboxSettings::default(), serde_json::from_str("{}").unwrap());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<InboxSettings>(r#"{"folder": []}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e =
            serde_json::from_str::<InboxSettings>(r#"{"folders": [{"path": "/x", "tenant": "t", "readonly": true}]}"#)
                .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
