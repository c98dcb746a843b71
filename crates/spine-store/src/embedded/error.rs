//! Errors of the embedded cluster. Each message names what failed and what to do about it.

use std::path::PathBuf;

/// Why the private PostgreSQL cluster could not be started, attached to or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries not found (looked in {looked}). Install them with \
         `apt-get install -y postgresql` or set DATABASE_URL to use an existing server."
    )]
    BinariesNotFound { looked: String },

    #[error(
        "OS user `{user}` not found in /etc/passwd; PostgreSQL refuses to run as root, so Spine runs it \
         as an unprivileged user. Create it with `useradd --system --user-group --home-dir /var/lib/postgresql \
         --shell /usr/sbin/nologin {user}` or set SPINE_PG_OS_USER to an existing unprivileged user."
    )]
    OsUserMissing { user: String },

    #[error(
        "OS user `{user}` has uid 0 and PostgreSQL refuses to run as root; set SPINE_PG_OS_USER to an \
         unprivileged user (e.g. `postgres`)."
    )]
    OsUserIsRoot { user: String },

    #[error(
        "{path} is not reachable by OS user `{user}` (uid {uid}), which runs PostgreSQL: {why}. \
         Run `chmod o+x {path}` or put the cluster directory elsewhere (e.g. under /var/lib or /srv)."
    )]
    NotReachable { path: PathBuf, user: String, uid: u32, why: String },

    #[error("{op} {path}: {source}. Check that the path exists and this user may write to it.")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },

    #[error("could not run {program}: {source}. Check the PostgreSQL installation (bin_dir).")]
    Spawn { program: PathBuf, source: std::io::Error },

    #[error(
        "initdb failed ({status}) for {data}: {stderr} -- fix the cause above and retry \
         (the half-initialised directory was removed)."
    )]
    InitdbFailed { data: PathBuf, status: String, stderr: String },

    #[error(
        "{data} exists but is not a PostgreSQL data directory (no PG_VERSION); move it away or \
         choose another cluster directory."
    )]
    NotADataDir { data: PathBuf },

    #[error(
        "{data} was initialised by PostgreSQL {data_version} but the binaries in {bin_dir} are version \
         {bin_version}; install PostgreSQL {data_version} (or set bin_dir to it) or upgrade the data with pg_upgrade."
    )]
    VersionMismatch { data: PathBuf, data_version: String, bin_dir: PathBuf, bin_version: String },

    #[error("PostgreSQL exited during startup ({status}); last lines of {log}: {tail}")]
    StartFailed { status: String, log: PathBuf, tail: String },

    #[error("PostgreSQL did not accept connections on {socket} within {secs} s; last lines of {log}: {tail}")]
    StartTimeout { socket: PathBuf, secs: u64, log: PathBuf, tail: String },

    #[error(
        "PostgreSQL (pid {pid}) is running on {data} but does not accept connections on {socket}; \
         stop it with `kill -INT {pid}` (or fix its socket directory) and retry."
    )]
    Unresponsive { pid: u32, data: PathBuf, socket: PathBuf },

    #[error(
        "old PostgreSQL processes {pids:?} are still running in {data} and did not exit after SIGQUIT; \
         kill them (`kill -9 <pid>`) and retry."
    )]
    OrphansRemain { pids: Vec<u32>, data: PathBuf },

    #[error(
        "PostgreSQL (pid {pid}) did not stop within {secs} s after SIGINT and SIGQUIT; kill it with `kill -9 {pid}`."
    )]
    StopTimeout { pid: u32, secs: u64 },

    #[error("{what} failed: {source}. See the server log in {log}.")]
    Sql { what: &'static str, log: PathBuf, source: sqlx::Error },
}

/// Shorthand for an [`EmbeddedError::Io`] constructor, for `map_err`.
pub(super) fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let path = path.into();
    move |source| EmbeddedError::Io { op, path, source }
}

/// Joins the last `max_lines` non-empty lines of `text` into one line.
pub(super) fn one_line_tail(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(max_lines);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() { "(no output)".to_owned() } else { joined }
}
