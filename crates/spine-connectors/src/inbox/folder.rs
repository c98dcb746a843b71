//! Watched folders as the watcher uses them: settings checked, tenant resolved, path made
//! absolute, and the folder with its `processed/` and `failed/` subfolders created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spine_core::ids::TenantId;
use spine_store::repos::tenants;
use spine_store::{Store, StoreError};

use super::config::{InboxSettings, WatchFolder};
use super::error::InboxError;
use super::ignore::{FAILED_DIR, IgnoreRules, PROCESSED_DIR};

/// The folder `default_folder` adds under the data directory.
pub const DEFAULT_FOLDER: &str = "inbox";

/// One folder ready to watch.
#[derive(Clone, Debug)]
pub struct ResolvedFolder {
    /// Absolute and canonical (symbolic links resolved), so event paths match it.
    pub path: PathBuf,
    pub tenant: TenantId,
    pub tenant_slug: String,
    pub read_only: bool,
    pub settle: Duration,
    pub rescan: Duration,
    pub recursive: bool,
    pub ignore: IgnoreRules,
}

impl ResolvedFolder {
    /// The folder as stored in state and capture rows.
    pub fn key(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// The folders `settings` asks for: each tenant looked up (slug or id), each folder created
/// when missing (with `processed/` and `failed/`, unless read-only) and made canonical. The
/// default folder `<data_dir>/inbox` belongs to the first tenant created. Empty when disabled.
/// Folders inside one another are refused: a file would belong to two of them.
pub async fn resolve(
    settings: &InboxSettings,
    data_dir: &Path,
    store: &Store,
) -> Result<Vec<ResolvedFolder>, InboxError> {
    if !settings.enabled {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<(WatchFolder, TenantId, String)> = Vec::new();
    if settings.default_folder {
        let mut tx = store.system_tx().await?;
        let first = tenants::list(&mut tx).await?.into_iter().next();
        tx.commit().await?;
        let Some(t) = first else {
            return Err(InboxError::Config("the default inbox needs a tenant, and there is none yet".into()));
        };
        wanted.push((WatchFolder::new(data_dir.join(DEFAULT_FOLDER), t.id.to_string()), TenantId(t.id), t.slug));
    }
    for f in &settings.folders {
        let mut tx = store.system_tx().await?;
        let t = match tenants::find(&mut tx, f.tenant.trim()).await {
            Ok(t) => t,
            Err(StoreError::NotFound) => return Err(InboxError::TenantNotFound(f.tenant.clone())),
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        wanted.push((f.clone(), TenantId(t.id), t.slug));
    }

    let mut out: Vec<ResolvedFolder> = Vec::with_capacity(wanted.len());
    for (f, tenant, tenant_slug) in wanted {
        let folder = prepare(&f, tenant, tenant_slug).await?;
        if let Some(other) = out.iter().find(|o| o.path.starts_with(&folder.path) || folder.path.starts_with(&o.path)) {
            return Err(InboxError::Config(format!(
                "watched folders {} and {} overlap; a file may belong to one folder only",
                other.path.display(),
                folder.path.display()
            )));
        }
        out.push(folder);
    }
    Ok(out)
}

async fn prepare(f: &WatchFolder, tenant: TenantId, tenant_slug: String) -> Result<ResolvedFolder, InboxError> {
    if f.rescan_secs == 0 {
        return Err(InboxError::Config(format!("inbox folder {}: rescan_secs must be at least 1", f.path.display())));
    }
    if f.ignore.iter().any(|p| p.is_empty()) {
        return Err(InboxError::Config(format!("inbox folder {}: empty ignore pattern", f.path.display())));
    }
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| InboxError::Folder { path, source }
    };
    if !f.read_only {
        for sub in [PROCESSED_DIR, FAILED_DIR] {
            tokio::fs::create_dir_all(f.path.join(sub)).await.map_err(io_err(&f.path))?;
        }
    }
    let path = tokio::fs::canonicalize(&f.path).await.map_err(io_err(&f.path))?;
    if !tokio::fs::metadata(&path).await.map_err(io_err(&path))?.is_dir() {
        return Err(InboxError::Config(format!("inbox folder {} is not a directory", path.display())));
    }
    Ok(ResolvedFolder {
        path,
        tenant,
        tenant_slug,
        read_only: f.read_only,
        settle: Duration::from_millis(f.settle_ms),
        rescan: Duration::from_secs(f.rescan_secs),
        recursive: f.recursive,
        ignore: IgnoreRules::new(&f.ignore),
    })
}
