//! A tenant, a blob store, an inbox folder and a running watcher, against a real PostgreSQL;
//! waiting is polling for the expected outcome with a deadline, never a bare sleep.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use spine_connectors::inbox::{
    InboxSettings, InboxStats, InboxWatcher, ResolvedFolder, StatsSnapshot, WatchFolder, resolve,
};
use spine_core::ids::TenantId;
use spine_pipeline::Supervisor;
use spine_pipeline::register::Registrar;
use spine_store::Store;
use spine_store::blob::{BlobConfig, BlobStore};
use tempfile::TempDir;

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Env {
    pub db: spine_testkit::TestDb,
    pub store: Store,
    pub blobs: BlobStore,
    pub registrar: Registrar,
    /// Holds the inbox (`inbox/`) and the blob store (`blobs/`).
    pub tmp: TempDir,
}

impl Env {
    pub async fn new(max_size: Option<u64>) -> Self {
        let db = spine_testkit::test_db().await;
        let tenant = TenantId::new();
        sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'inbox', 'Inbox')")
            .bind(tenant.as_uuid())
            .execute(&db.pool)
            .await
            .unwrap();
        let store = Store::new(db.pool.clone());
        let tmp = tempfile::tempdir().unwrap();
        let blobs = BlobStore::from_config(&BlobConfig::Local { root: tmp.path().join("blobs") }).await.unwrap();
        let registrar = Registrar::new(store.clone(), blobs.clone(), max_size);
        Self { db, store, blobs, registrar, tmp }
    }

    /// The inbox as configured (before canonicalisation).
    pub fn inbox(&self) -> PathBuf {
        self.tmp.path().join("inbox")
    }

    /// The folder with test-friendly timings, adjusted by `f`, resolved as `spine up` would.
    pub async fn folder(&self, f: impl FnOnce(&mut WatchFolder)) -> Vec<ResolvedFolder> {
        let mut wf = WatchFolder::new(self.inbox(), "inbox");
        wf.settle_ms = 300;
        f(&mut wf);
        if wf.read_only {
            std::fs::create_dir_all(&wf.path).unwrap();
        }
        let settings = InboxSettings { enabled: true, default_folder: false, folders: vec![wf] };
        resolve(&settings, self.tmp.path(), &self.store).await.unwrap()
    }

    pub fn watcher(&self, folders: Vec<ResolvedFolder>) -> InboxWatcher {
        InboxWatcher::new(self.registrar.clone(), self.store.clone(), folders, "test-host")
    }

    pub fn start(&self, folders: Vec<ResolvedFolder>) -> Running {
        Running::start(self.watcher(folders))
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every blob in the store.
    pub async fn blob_hashes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.blobs.list().map_ok(|b| b.sha256).try_collect().await.unwrap();
        v.sort();
        v
    }

    /// No partial registrations: every capture points at a file version, every non-duplicate
    /// capture has its own version, batch and job, every version's blob exists and no blob is
    /// unreferenced.
    pub async fn assert_consistent(&self) {
        let dangling = self
            .count(
                "SELECT count(*) FROM qiaccess.capture_events c WHERE NOT EXISTS \
                 (SELECT 1 FROM qinexus.file_versions v WHERE v.file_id = c.file_id AND v.version = c.file_version)",
            )
            .await;
        assert_eq!(dangling, 0, "captures without their file version");
        let orphan_versions = self
            .count(
                "SELECT count(*) FROM qinexus.file_versions v WHERE NOT EXISTS \
                 (SELECT 1 FROM qiaccess.capture_events c WHERE c.id = v.capture_event_id AND NOT c.is_duplicate \
                  AND c.import_batch_id IS NOT NULL) \
                 OR NOT EXISTS (SELECT 1 FROM qiserver.jobs j WHERE j.file_id = v.file_id)",
            )
            .await;
        assert_eq!(orphan_versions, 0, "versions without their capture, batch or job");
        let mut referenced: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT content_sha256 FROM qinexus.file_versions ORDER BY 1")
                .fetch_all(&self.db.pool)
                .await
                .unwrap();
        referenced.sort();
        assert_eq!(self.blob_hashes().await, referenced, "blobs and file versions differ");
        let unfinished = self.count("SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registering'").await;
        assert_eq!(unfinished, 0, "inbox entries left registering");
    }
}

/// A watcher running under a supervisor, as in `spine up`.
pub struct Running {
    sup: Supervisor,
    pub stats: InboxStats,
}

impl Running {
    pub fn start(watcher: InboxWatcher) -> Self {
        let stats = watcher.stats();
        let mut sup = Supervisor::new();
        sup.spawn("inbox", move |shutdown| watcher.run(shutdown));
        Self { sup, stats }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Waits until at least `n` full rescans have finished and nothing is waiting or in flight.
    pub async fn idle_after_rescans(&self, n: u64) {
        wait_for(&format!("{n} rescans and an idle watcher"), || async {
            let s = self.snapshot();
            s.rescans >= n && s.pending == 0 && s.in_flight == 0
        })
        .await;
    }

    pub async fn stop(self) {
        self.sup.shutdown().await;
    }
}

/// Polls `check` until it holds; panics after [`TIMEOUT`].
pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `sql` (a count) returns `n`.
pub async fn wait_count(env: &Env, sql: &str, n: i64) {
    wait_for(&format!("{sql} = {n}"), || async { env.count(sql).await == n }).await;
}

/// Files (not folders) under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else { continue };
        for e in entries {
            let e = e.unwrap();
            let child = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
