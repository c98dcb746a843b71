//! A private PostgreSQL cluster that Spine runs itself when DATABASE_URL is unset.
//!
//! Layout of [`ClusterConfig::dir`]: `data/` (PGDATA), `run/` (unix socket; no TCP listener),
//! `log/postgres.log`, `.lock` (serialises concurrent starts) and, when `run/` is too deep for a
//! unix socket path, `socket_dir` naming the short directory under /tmp used instead.
//!
//! The postmaster is a child of this process, spawned from a dedicated thread with
//! `PR_SET_PDEATHSIG = SIGQUIT`, so it never outlives the process that started it, even after
//! `kill -9`. Another process can [`Cluster::attach_or_start`] to a running cluster.

mod error;
mod layout;
mod postmaster;
mod sys;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

pub use error::EmbeddedError;
pub use layout::find_bin_dir;

use error::io_err;
use layout::{Layout, OsUser, PORT};
use postmaster::{NotReady, Postmaster};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(60);
const SUPERUSER: &str = "postgres";

/// Where and how to run the private cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The cluster directory, e.g. `./data/pg`.
    pub dir: PathBuf,
    /// The OS account PostgreSQL runs as when this process is root. `None`: `$SPINE_PG_OS_USER`,
    /// else `postgres`. Ignored when not root (the server then runs as this process's user).
    pub os_user: Option<String>,
    /// The directory holding `postgres` and `initdb`; `None` searches (see [`find_bin_dir`]).
    pub bin_dir: Option<PathBuf>,
    /// The database [`Cluster::connect_options`] points at; created if missing.
    pub database: String,
    /// Tests only: initdb `-N` and start with fsync, synchronous_commit and full_page_writes off.
    /// Data does not survive an OS crash.
    pub fast: bool,
    /// Tests only: the server dies with the process that started it (PR_SET_PDEATHSIG), and only
    /// that process stops it. Otherwise (the default) the cluster is shared: every process using
    /// it holds a shared lock on `dir/.users`, and whichever stops last shuts the server down,
    /// so a short CLI command never pulls the cluster from under a `spine up` that attached to it.
    pub tied_to_process: bool,
}

impl ClusterConfig {
    /// Defaults for `dir`: no overrides, database `spine`, durable.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            os_user: None,
            bin_dir: None,
            database: "spine".to_owned(),
            fast: false,
            tied_to_process: false,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self::new("data/pg")
    }
}

/// A running private cluster, started by this process or attached to.
#[derive(Debug)]
pub struct Cluster {
    layout: Layout,
    database: String,
    pid: u32,
    /// `Some` when this process started the postmaster.
    postmaster: Option<Postmaster>,
    /// Shared lifecycle: our shared lock on `dir/.users` (see [`ClusterConfig::tied_to_process`]).
    users: Option<std::fs::File>,
}

impl Cluster {
    /// If a cluster in `cfg.dir` is already running (postmaster.pid names a live postmaster of
    /// this data directory AND a connection over its socket succeeds) attach to it. Otherwise
    /// initdb on first use, start it, wait until it accepts connections. Either way, create
    /// `cfg.database` if missing.
    pub async fn attach_or_start(cfg: ClusterConfig) -> Result<Cluster, EmbeddedError> {
        let user = layout::run_as_user(cfg.os_user.as_deref())?;
        let layout = layout::prepare(&cfg.dir, user.as_ref())?;
        let _lock = lock(&layout).await?;
        let mut cluster = match probe(&layout).await? {
            Some(pid) => {
                tracing::info!(dir = %layout.dir.display(), pid, "attached to running PostgreSQL");
                Cluster { layout, database: cfg.database.clone(), pid, postmaster: None, users: None }
            }
            None => start(&cfg, layout, user.as_ref()).await?,
        };
        if !cfg.tied_to_process {
            // Taken while holding the start lock, which every stopper holds too: no race with a stop.
            cluster.users = Some(users_lock(&cluster.layout)?);
        }
        cluster.ensure_database().await?;
        Ok(cluster)
    }

    /// Unix socket, superuser `postgres`, database `cfg.database`.
    pub fn connect_options(&self) -> PgConnectOptions {
        socket_options(&self.layout.socket_dir).database(&self.database)
    }

    /// Like [`Cluster::connect_options`] but for the `postgres` maintenance database.
    pub fn admin_options(&self) -> PgConnectOptions {
        socket_options(&self.layout.socket_dir).database("postgres")
    }

    /// A URL for psql and for DATABASE_URL, e.g.
    /// `postgresql:///spine?host=/abs/data/pg/run&user=postgres`. (The shorter
    /// `postgresql://postgres@/spine?host=…` works in psql, but sqlx rejects it: "empty host".)
    pub fn display_url(&self) -> String {
        let host: String = self
            .layout
            .socket_dir
            .to_string_lossy()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("postgresql:///{}?host={host}&user={SUPERUSER}", self.database)
    }

    /// Whether this process started the postmaster (and [`Cluster::stop`] will stop it).
    pub fn started_here(&self) -> bool {
        self.postmaster.is_some()
    }

    /// The directory holding the unix socket `.s.PGSQL.5432`.
    pub fn socket_dir(&self) -> &Path {
        &self.layout.socket_dir
    }

    /// The (canonical) cluster directory.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// PGDATA.
    pub fn data_dir(&self) -> &Path {
        &self.layout.data
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        &self.layout.log
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves when a postmaster started here exits (e.g. it crashed); never resolves when
    /// attached. For `tokio::select!` in a server's main loop.
    pub async fn exited(&self) -> String {
        match &self.postmaster {
            Some(pm) => pm.exited().await,
            None => std::future::pending().await,
        }
    }

    /// Tied to the process: clean (fast) shutdown if this process started the cluster, no-op when
    /// attached. Shared: shuts the server down if no other process is using it, whoever started
    /// it. Waits for the postmaster to exit (SIGINT, then SIGQUIT after 60 s).
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        if let Some(users) = self.users.take() {
            let _start_lock = lock(&self.layout).await?;
            drop(users);
            let Some(_last) = last_user_lock(&self.layout).await? else {
                tracing::info!(dir = %self.layout.dir.display(), "PostgreSQL left running: other processes use it");
                if let Some(pm) = self.postmaster.take() {
                    pm.detach();
                }
                return Ok(());
            };
            match self.postmaster.take() {
                Some(pm) => pm.shutdown(STOP_GRACE).await?,
                None => postmaster::shutdown_pid(self.pid, &self.layout.data, STOP_GRACE).await?,
            }
            tracing::info!(dir = %self.layout.dir.display(), "PostgreSQL stopped");
            return Ok(());
        }
        match self.postmaster.take() {
            Some(pm) => {
                pm.shutdown(STOP_GRACE).await?;
                tracing::info!(dir = %self.layout.dir.display(), "PostgreSQL stopped");
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let sql = |what| {
            let log = self.layout.log.clone();
            move |source| EmbeddedError::Sql { what, log, source }
        };
        let mut conn = PgConnection::connect_with(&self.admin_options()).await.map_err(sql("connecting"))?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&self.database)
            .fetch_one(&mut conn)
            .await
            .map_err(sql("looking up the database"))?;
        if !exists {
            let stmt = format!("CREATE DATABASE \"{}\"", self.database.replace('"', "\"\""));
            match sqlx::query(sqlx::AssertSqlSafe(stmt)).execute(&mut conn).await {
                Ok(_) => tracing::info!(database = %self.database, "created database"),
                // Someone else created it concurrently.
                Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
                Err(e) => return Err(sql("CREATE DATABASE")(e)),
            }
        }
        let _ = conn.close().await;
        Ok(())
    }
}

impl Drop for Cluster {
    /// Tied to the process: a cluster dropped without [`Cluster::stop`] gets a fast shutdown
    /// request (not awaited). Shared: it is left running for the next user.
    fn drop(&mut self) {
        if let Some(pm) = &self.postmaster
            && self.users.is_none()
        {
            pm.request_shutdown();
        }
    }
}

/// Opens (creating it if needed) a file used only for its lock.
fn open_lock_file(path: &Path) -> Result<std::fs::File, EmbeddedError> {
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io_err("open", path))
}

/// A shared lock on `dir/.users`, held for as long as this process uses the cluster.
fn users_lock(layout: &Layout) -> Result<std::fs::File, EmbeddedError> {
    let path = layout.users_file();
    let file = open_lock_file(&path)?;
    file.lock_shared().map_err(io_err("lock", &path))?;
    Ok(file)
}

/// The exclusive users lock when no other process holds a shared one. Tried for up to 200 ms: a
/// child this process forks (any thread, e.g. another cluster's `initdb`) shares our lock file's
/// description until it execs, which for a moment looks like another user; a real one holds it
/// for as long as it runs. (Seen once in CI: a stop that left the cluster running.)
async fn last_user_lock(layout: &Layout) -> Result<Option<std::fs::File>, EmbeddedError> {
    for _ in 0..20 {
        if let Some(file) = try_users_lock_exclusive(layout)? {
            return Ok(Some(file));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    try_users_lock_exclusive(layout)
}

/// The exclusive lock on `dir/.users` if no other process holds it shared.
fn try_users_lock_exclusive(layout: &Layout) -> Result<Option<std::fs::File>, EmbeddedError> {
    let path = layout.users_file();
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
    }
}

/// Pids of every running server process (postmaster and children) of the cluster in
/// `cluster_dir`; empty when it is stopped. Found through `/proc/*/cwd`.
pub fn cluster_pids(cluster_dir: &Path) -> Vec<u32> {
    match std::fs::canonicalize(cluster_dir) {
        Ok(dir) => layout::data_dir_pids(&dir.join("data")),
        Err(_) => Vec::new(),
    }
}

fn socket_options(socket_dir: &Path) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .socket(socket_dir)
        .port(PORT)
        .username(SUPERUSER)
        .ssl_mode(PgSslMode::Disable)
}

/// Takes the cross-process lock on the cluster directory (released when the file is dropped).
async fn lock(layout: &Layout) -> Result<std::fs::File, EmbeddedError> {
    let path = layout.lock_file();
    tokio::task::spawn_blocking(move || {
        let file = open_lock_file(&path)?;
        file.lock().map_err(io_err("lock", &path))?;
        Ok(file)
    })
    .await
    .map_err(|e| io_err("lock", layout.lock_file())(std::io::Error::other(e.to_string())))?
}

/// The pid of a live postmaster for this data directory that accepts connections, if any.
async fn probe(layout: &Layout) -> Result<Option<u32>, EmbeddedError> {
    let Some((pid, status)) = layout::read_pid_file(&layout.pid_file()) else { return Ok(None) };
    if !layout::is_live_postmaster(pid, &layout.data) {
        tracing::info!(pid, "postmaster.pid is stale (process gone); starting a new server");
        return Ok(None);
    }
    // Starting up, recovering or shutting down: wait until it accepts connections or exits.
    let timeout = if status == "ready" { Duration::from_secs(2) } else { START_TIMEOUT };
    let gone = || (!layout::is_live_postmaster(pid, &layout.data)).then(|| "exited".to_owned());
    match postmaster::wait_ready(&socket_options(&layout.socket_dir).database("postgres"), timeout, gone, None).await {
        Ok(()) => Ok(Some(pid)),
        Err(NotReady::Exited(_)) => Ok(None),
        Err(NotReady::Timeout) => {
            Err(EmbeddedError::Unresponsive { pid, data: layout.data.clone(), socket: layout.socket_dir.clone() })
        }
    }
}

/// initdb if needed, start the postmaster, wait until it accepts connections.
async fn start(cfg: &ClusterConfig, layout: Layout, user: Option<&OsUser>) -> Result<Cluster, EmbeddedError> {
    postmaster::wait_for_orphans(&layout.data).await?;
    let version_file = layout.data.join("PG_VERSION");
    let data_version = match std::fs::read_to_string(&version_file) {
        Ok(v) => Some(v.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("read", &version_file)(e)),
    };
    let bin_dir = match (&cfg.bin_dir, &data_version) {
        (Some(dir), _) => find_bin_dir(Some(dir))?,
        (None, Some(v)) => {
            // Prefer the server version that created the data over the newest one installed.
            let same = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
            if layout::has_server(&same) { same } else { find_bin_dir(None)? }
        }
        (None, None) => find_bin_dir(None)?,
    };
    let bin_version = layout::server_major(&bin_dir)?;
    match data_version {
        Some(v) if !bin_version.is_empty() && v != bin_version => {
            return Err(EmbeddedError::VersionMismatch {
                data: layout.data.clone(),
                data_version: v,
                bin_dir,
                bin_version,
            });
        }
        Some(_) => {}
        None => {
            let non_empty = std::fs::read_dir(&layout.data).map_err(io_err("read", &layout.data))?.next().is_some();
            if non_empty {
                return Err(EmbeddedError::NotADataDir { data: layout.data.clone() });
            }
            tracing::info!(dir = %layout.dir.display(), "initialising PostgreSQL cluster (initdb)");
            postmaster::initdb(&layout, &bin_dir, user, cfg.fast).await?;
        }
    }

    let (pm, log_offset) = postmaster::spawn(&layout, &bin_dir, user, cfg.fast, cfg.tied_to_process).await?;
    let admin = socket_options(&layout.socket_dir).database("postgres");
    let ready = postmaster::wait_ready(&admin, START_TIMEOUT, || pm.exit_status(), Some(pm.exit_receiver())).await;
    let pid = pm.pid;
    let cluster = Cluster { layout, database: cfg.database.clone(), pid, postmaster: Some(pm), users: None };
    match ready {
        Ok(()) => {
            tracing::info!(dir = %cluster.layout.dir.display(), pid, "PostgreSQL started");
            Ok(cluster)
        }
        Err(NotReady::Exited(status)) => Err(EmbeddedError::StartFailed {
            status,
            log: cluster.layout.log.clone(),
            tail: postmaster::log_tail(&cluster.layout.log, log_offset),
        }),
        Err(NotReady::Timeout) => {
            let (socket, log) = (cluster.layout.socket_dir.clone(), cluster.layout.log.clone());
            let _ = cluster.stop().await;
            Err(EmbeddedError::StartTimeout {
                socket,
                secs: START_TIMEOUT.as_secs(),
                tail: postmaster::log_tail(&log, log_offset),
                log,
            })
        }
    }
}
