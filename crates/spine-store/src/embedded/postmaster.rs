//! Running initdb and the postmaster as child processes, waiting for them, stopping them.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{oneshot, watch};

use super::error::{EmbeddedError, io_err, one_line_tail};
use super::layout::{Layout, OsUser, PORT};
use super::sys;

/// A command for a PostgreSQL program with a clean environment, run as `user` from `cwd`.
fn pg_command(program: &Path, cwd: &Path, user: Option<&OsUser>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).env_clear().env("LC_ALL", "C").env("LANG", "C");
    for var in ["PATH", "TZ"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
    cmd
}

/// Initialises `layout.data` atomically: initdb into a scratch directory, then rename it.
pub(super) async fn initdb(
    layout: &Layout,
    bin_dir: &Path,
    user: Option<&OsUser>,
    fast: bool,
) -> Result<(), EmbeddedError> {
    let scratch = layout.dir.join("data.initdb");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(io_err("remove", &scratch))?;
    }
    fs::DirBuilder::new().mode(0o700).create(&scratch).map_err(io_err("create directory", &scratch))?;
    if let Some(u) = user {
        std::os::unix::fs::chown(&scratch, Some(u.uid), Some(u.gid)).map_err(io_err("chown", &scratch))?;
    }
    let program = bin_dir.join("initdb");
    let mut cmd = pg_command(&program, &layout.dir, user);
    cmd.arg("-D").arg(&scratch);
    cmd.args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-instructions"]);
    if fast {
        cmd.arg("-N");
    }
    cmd.stdin(Stdio::null());
    sys::die_with_parent(&mut cmd);
    let out =
        output_in_thread(cmd).await.map_err(|source| EmbeddedError::Spawn { program: program.clone(), source })?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&scratch);
        return Err(EmbeddedError::InitdbFailed {
            data: layout.data.clone(),
            status: out.status.to_string(),
            stderr: one_line_tail(&String::from_utf8_lossy(&out.stderr), 15),
        });
    }
    // `dir/data` exists (empty) from Layout::prepare; swap it for the initialised one.
    fs::remove_dir(&layout.data).map_err(io_err("remove", &layout.data))?;
    fs::rename(&scratch, &layout.data).map_err(io_err("rename", &scratch))?;
    Ok(())
}

/// Runs `cmd` to completion on a thread of its own (so a parent-death signal set on it refers to
/// a thread that outlives the child) and collects its output.
async fn output_in_thread(mut cmd: Command) -> std::io::Result<std::process::Output> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new().name("spine-initdb".into()).spawn(move || {
        let _ = tx.send(cmd.output());
    })?;
    rx.await.unwrap_or_else(|_| Err(std::io::Error::other("initdb thread died")))
}

/// A postmaster this process started and a dedicated thread waits on.
#[derive(Debug)]
pub(super) struct Postmaster {
    pub pid: u32,
    exit: watch::Receiver<Option<String>>,
}

/// Starts `postgres` from a dedicated thread that lives exactly as long as the child, so that
/// PR_SET_PDEATHSIG (which fires when the spawning *thread* ends) fires only when this process dies.
pub(super) async fn spawn(
    layout: &Layout,
    bin_dir: &Path,
    user: Option<&OsUser>,
    fast: bool,
    tied_to_process: bool,
) -> Result<(Postmaster, u64), EmbeddedError> {
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(&layout.log)
        .map_err(io_err("open", &layout.log))?;
    if let Some(u) = user {
        std::os::unix::fs::chown(&layout.log, Some(u.uid), Some(u.gid)).map_err(io_err("chown", &layout.log))?;
    }
    let log_offset = log.seek(SeekFrom::End(0)).map_err(io_err("seek", &layout.log))?;
    let log_out = log.try_clone().map_err(io_err("open", &layout.log))?;

    let program = bin_dir.join("postgres");
    let mut cmd = pg_command(&program, &layout.dir, user);
    cmd.arg("-D").arg(&layout.data).arg("-k").arg(&layout.socket_dir).arg("-p").arg(PORT.to_string());
    for setting in ["listen_addresses=", "unix_socket_permissions=0700", "cluster_name=spine"] {
        cmd.arg("-c").arg(setting);
    }
    if fast {
        for setting in ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] {
            cmd.arg("-c").arg(setting);
        }
    }
    // Own process group: a terminal's Ctrl-C goes to Spine, which then stops the cluster itself.
    cmd.stdin(Stdio::null()).stdout(log_out).stderr(log).process_group(0);
    if tied_to_process {
        sys::die_with_parent(&mut cmd);
    }

    let (pid_tx, pid_rx) = oneshot::channel();
    let (exit_tx, exit_rx) = watch::channel(None);
    std::thread::Builder::new()
        .name("spine-postmaster".into())
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                    return;
                }
            };
            let _ = pid_tx.send(Ok(child.id()));
            drop(cmd); // closes our copies of the log descriptors
            let status = match child.wait() {
                Ok(status) => status.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            exit_tx.send_replace(Some(status));
        })
        .map_err(|source| EmbeddedError::Spawn { program: program.clone(), source })?;
    let pid = match pid_rx.await {
        Ok(Ok(pid)) => pid,
        Ok(Err(source)) => return Err(EmbeddedError::Spawn { program, source }),
        Err(_) => return Err(EmbeddedError::Spawn { program, source: std::io::Error::other("spawn thread died") }),
    };
    Ok((Postmaster { pid, exit: exit_rx }, log_offset))
}

impl Postmaster {
    /// The exit status, once the postmaster has exited.
    pub fn exit_status(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// A receiver that turns `Some(status)` when the postmaster exits.
    pub fn exit_receiver(&self) -> watch::Receiver<Option<String>> {
        self.exit.clone()
    }

    /// Resolves when the postmaster has exited.
    pub async fn exited(&self) -> String {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or_default(),
            Err(_) => "unknown (waiter thread gone)".to_owned(),
        }
    }

    /// Fast shutdown (SIGINT); after `grace`, immediate shutdown (SIGQUIT). Waits for the exit.
    pub async fn shutdown(&self, grace: Duration) -> Result<(), EmbeddedError> {
        for (sig, wait) in [(sys::SIGINT, grace), (sys::SIGQUIT, Duration::from_secs(10))] {
            if self.exit_status().is_some() {
                return Ok(());
            }
            let _ = sys::signal(self.pid, sig);
            if tokio::time::timeout(wait, self.exited()).await.is_ok() {
                return Ok(());
            }
            tracing::warn!(pid = self.pid, signal = sig, "PostgreSQL did not stop in time");
        }
        Err(EmbeddedError::StopTimeout { pid: self.pid, secs: grace.as_secs() + 10 })
    }

    /// Leaves the server running after this process is gone (shared lifecycle).
    pub fn detach(self) {}

    /// Best-effort fast shutdown without waiting (for Drop).
    pub fn request_shutdown(&self) {
        if self.exit_status().is_none() {
            let _ = sys::signal(self.pid, sys::SIGINT);
        }
    }
}

/// Stops a postmaster this process did not start: fast shutdown, then immediate after `grace`.
/// A non-child cannot be waited on, so this polls for the process to disappear.
pub(super) async fn shutdown_pid(pid: u32, data: &Path, grace: Duration) -> Result<(), EmbeddedError> {
    for (sig, wait) in [(sys::SIGINT, grace), (sys::SIGQUIT, Duration::from_secs(10))] {
        if !super::layout::is_live_postmaster(pid, data) {
            return Ok(());
        }
        let _ = sys::signal(pid, sig);
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(5);
        while Instant::now() < deadline {
            if !super::layout::is_live_postmaster(pid, data) {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
        tracing::warn!(pid, signal = sig, "PostgreSQL did not stop in time");
    }
    Err(EmbeddedError::StopTimeout { pid, secs: grace.as_secs() + 10 })
}

/// Why a server did not become ready.
pub(super) enum NotReady {
    Exited(String),
    Timeout,
}

/// Retries a real connection with a short backoff until it succeeds, `gone()` reports the server
/// has exited, or `timeout` passes. While the server answers "starting up / in recovery" (57P03)
/// the wait extends up to ten minutes: it is alive and making progress.
pub(super) async fn wait_ready(
    opts: &PgConnectOptions,
    timeout: Duration,
    mut gone: impl FnMut() -> Option<String>,
    mut exit_rx: Option<watch::Receiver<Option<String>>>,
) -> Result<(), NotReady> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(status) = gone() {
            return Err(NotReady::Exited(status));
        }
        let recovering = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(opts)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(sqlx::Error::Database(e))) => e.code().as_deref() == Some("57P03"),
            _ => false,
        };
        let limit = if recovering { timeout.max(Duration::from_secs(600)) } else { timeout };
        if start.elapsed() >= limit {
            return Err(NotReady::Timeout);
        }
        match exit_rx.as_mut() {
            Some(rx) => {
                let _ = tokio::time::timeout(delay, rx.wait_for(Option::is_some)).await;
            }
            None => tokio::time::sleep(delay).await,
        }
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Waits for leftover server processes in `data` (e.g. backends of a postmaster killed with
/// SIGKILL) to exit; they notice the postmaster's death by themselves. Sends SIGQUIT after 5 s.
pub(super) async fn wait_for_orphans(data: &Path) -> Result<(), EmbeddedError> {
    let mut pids = super::layout::data_dir_pids(data);
    for phase in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pids.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            pids = super::layout::data_dir_pids(data);
        }
        if pids.is_empty() {
            return Ok(());
        }
        if phase == 0 {
            tracing::warn!(?pids, data = %data.display(), "old PostgreSQL processes still running; sending SIGQUIT");
            for pid in &pids {
                let _ = sys::signal(*pid, sys::SIGQUIT);
            }
        }
    }
    Err(EmbeddedError::OrphansRemain { pids, data: data.to_path_buf() })
}

/// The last lines the server wrote to `log` since byte `offset`, as one line.
pub(super) fn log_tail(log: &PathBuf, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = offset.max(len.saturating_sub(16 * 1024));
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            text = String::from_utf8_lossy(&buf).into_owned();
        }
    }
    one_line_tail(&text, 12)
}
