//! Throwaway, migrated PostgreSQL databases for Spine's integration tests.
//!
//! [`test_db`] returns a fresh database cloned from a migrated template. The server is
//! `DATABASE_URL` when set (it must allow `CREATE DATABASE`); otherwise one private cluster per
//! test process, started in fast mode in a temp dir through [`spine_store::embedded`]. That cluster
//! dies with the process (PR_SET_PDEATHSIG); its directory is removed by the next test process
//! that finds it orphaned.
//!
//! Only plain data (connect options, names) is kept in statics: every `#[tokio::test]` has its own
//! runtime, and pools or connections must not outlive the runtime they were made on.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use spine_store::embedded::{Cluster, ClusterConfig, cluster_pids};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// A fresh database with every migration applied.
pub struct TestDb {
    /// Superuser pool (at most 5 connections) on the database.
    pub pool: PgPool,
    /// The database name, `t_<uuid>`.
    pub name: String,
    /// Options to open more connections to the database (e.g. as another role).
    pub options: PgConnectOptions,
}

/// Creates a fresh migrated database (`CREATE DATABASE t_<uuid> TEMPLATE spine_tpl_<hash>`).
/// Panics with the reason when no server can be had or the migrations fail.
pub async fn test_db() -> TestDb {
    let shared = shared();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&shared.admin)
        .await
        .unwrap_or_else(|e| panic!("testkit: connecting to the admin database failed: {e}"));
    let stmt = format!("CREATE DATABASE {} TEMPLATE {}", quote(&name), quote(&shared.template));
    sqlx::query(AssertSqlSafe(stmt))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("testkit: CREATE DATABASE {name} failed: {e}"));
    let _ = admin.close().await;
    let options = shared.admin.clone().database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options.clone())
        .await
        .unwrap_or_else(|e| panic!("testkit: connecting to {name} failed: {e}"));
    TestDb { pool, name, options }
}

/// Inserts a tenant (`core.tenants`) with the given id and slug, as the owner: the first row
/// most tests need.
pub async fn add_tenant(pool: &PgPool, id: uuid::Uuid, slug: &str) {
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, $2)")
        .bind(id)
        .bind(slug)
        .execute(pool)
        .await
        .expect("inserting a test tenant");
}

/// Superuser options for the server's maintenance database (`postgres`, or DATABASE_URL's).
pub fn admin_options() -> PgConnectOptions {
    shared().admin.clone()
}

/// The migrated template's name, `spine_tpl_<12 hex>`; it changes whenever a migration does.
pub fn template_name() -> String {
    let mut h = Fnv64::default();
    for m in spine_store::migrate::MIGRATOR.iter() {
        h.write(&m.version.to_le_bytes());
        h.write(&m.checksum);
    }
    format!("spine_tpl_{}", &format!("{:016x}", h.0)[..12])
}

struct Shared {
    admin: PgConnectOptions,
    template: String,
    /// Keeps the private cluster's handle alive (it is never stopped; it dies with the process).
    _cluster: Option<Cluster>,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// Process-wide setup, run once on a thread with its own runtime so that it does not depend on
/// (or outlive) the runtime of whichever test gets here first.
fn shared() -> &'static Shared {
    let init = || {
        std::thread::Builder::new()
            .name("spine-testkit-init".into())
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("building a runtime: {e}"))?;
                rt.block_on(setup())
            })
            .map_err(|e| format!("spawning the setup thread: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the setup thread panicked".to_owned()))
    };
    match SHARED.get_or_init(init) {
        Ok(shared) => shared,
        Err(e) => panic!("testkit: test database setup failed: {e}"),
    }
}

async fn setup() -> Result<Shared, String> {
    let (admin, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            (PgConnectOptions::from_str(&url).map_err(|e| format!("DATABASE_URL: {e}"))?, None)
        }
        _ => {
            let cluster = start_private_cluster().await?;
            (cluster.admin_options(), Some(cluster))
        }
    };
    let template = template_name();
    ensure_template(&admin, &template).await?;
    Ok(Shared { admin, template, _cluster: cluster })
}

const DIR_PREFIX: &str = "spine-testkit.";

async fn start_private_cluster() -> Result<Cluster, String> {
    let tmp = std::env::temp_dir();
    sweep_orphaned_dirs(&tmp);
    let dir =
        tmp.join(format!("{DIR_PREFIX}{}.{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let cfg = ClusterConfig {
        fast: true,
        tied_to_process: true,
        database: "postgres".to_owned(),
        ..ClusterConfig::new(&dir)
    };
    Cluster::attach_or_start(cfg).await.map_err(|e| e.to_string())
}

/// Best effort: removes `spine-testkit.<pid>.*` dirs whose process is gone and whose cluster
/// has no process left.
fn sweep_orphaned_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else { continue };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let path: PathBuf = entry.path();
        if !Path::new(&format!("/proc/{pid}")).exists() && cluster_pids(&path).is_empty() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Creates and migrates `template` once per server. Concurrent processes serialise on an
/// advisory lock; the template is built under a scratch name and renamed when complete, so a
/// crash halfway never leaves a half-migrated template behind.
async fn ensure_template(admin: &PgConnectOptions, template: &str) -> Result<(), String> {
    const LOCK_KEY: i64 = 0x5350_494e_4554_4b01; // "SPINETK\x01"
    let sql_err = |what: &str| {
        let what = what.to_owned();
        move |e: sqlx::Error| format!("{what}: {e}")
    };
    let mut conn = PgConnection::connect_with(admin).await.map_err(sql_err("connecting to the server"))?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut conn)
        .await
        .map_err(sql_err("pg_advisory_lock"))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(template)
        .fetch_one(&mut conn)
        .await
        .map_err(sql_err("looking up the template"))?;
    if !exists {
        let building = format!("{template}_building");
        for stmt in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&building)),
            format!("CREATE DATABASE {}", quote(&building)),
        ] {
            sqlx::query(AssertSqlSafe(stmt.clone())).execute(&mut conn).await.map_err(sql_err(&stmt))?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(admin.clone().database(&building))
            .await
            .map_err(sql_err("connecting to the template"))?;
        let migrated = spine_store::migrate::run(&pool).await;
        pool.close().await;
        migrated.map_err(|e| format!("running the migrations on {building}: {e}"))?;
        for stmt in [
            format!("ALTER DATABASE {} RENAME TO {}", quote(&building), quote(template)),
            // Nobody may connect to it, so CREATE DATABASE ... TEMPLATE never finds it busy.
            format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", quote(template)),
        ] {
            sqlx::query(AssertSqlSafe(stmt.clone())).execute(&mut conn).await.map_err(sql_err(&stmt))?;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut conn)
        .await
        .map_err(sql_err("pg_advisory_unlock"))?;
    let _ = conn.close().await;
    Ok(())
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// 64-bit FNV-1a: stable across processes, builds and Rust versions (unlike `DefaultHasher`).
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Child processes a test started (worker or scheduler processes); killed and reaped when the
/// guard drops, however the test ends.
pub struct Children(pub Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The shared corpus of real-world test inputs (`../shared/corpus` beside the repository), read
/// in place. Panics with its expected path when it is missing.
pub fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    assert!(dir.is_dir(), "the shared corpus is expected at {}", dir.display());
    dir
}

/// Appends every file under `dir` (recursively) to `out`.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}
