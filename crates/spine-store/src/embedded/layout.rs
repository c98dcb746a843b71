//! Where the cluster's files live, who owns them, and where the server binaries are.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{EmbeddedError, io_err};
use super::sys;

/// The port in the socket file name; there is no TCP listener.
pub(super) const PORT: u16 = 5432;
const SOCKET_NAME: &str = ".s.PGSQL.5432";
/// `sun_path` holds 108 bytes; stay well below it.
const MAX_SOCKET_PATH: usize = 100;

/// The unprivileged account PostgreSQL runs as when this process is root.
#[derive(Debug, Clone)]
pub(super) struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The account to run initdb/postgres as: `None` means "as this process" (not root).
pub(super) fn run_as_user(requested: Option<&str>) -> Result<Option<OsUser>, EmbeddedError> {
    if sys::geteuid() != 0 {
        return Ok(None);
    }
    let env_user = std::env::var("SPINE_PG_OS_USER").ok().filter(|s| !s.is_empty());
    let name = requested.map(str::to_owned).or(env_user).unwrap_or_else(|| "postgres".to_owned());
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_err("read", "/etc/passwd"))?;
    let user = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == name)
        .and_then(|f| Some(OsUser { name: name.clone(), uid: f[2].parse().ok()?, gid: f[3].parse().ok()? }));
    match user {
        None => Err(EmbeddedError::OsUserMissing { user: name }),
        Some(u) if u.uid == 0 => Err(EmbeddedError::OsUserIsRoot { user: name }),
        Some(u) => Ok(Some(u)),
    }
}

/// The resolved, created directories of one cluster.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub socket_dir: PathBuf,
    pub log: PathBuf,
}

impl Layout {
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join(".lock")
    }
    /// Shared-locked by every process using the cluster (shared lifecycle).
    pub fn users_file(&self) -> PathBuf {
        self.dir.join(".users")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.data.join("postmaster.pid")
    }
}

/// Creates `dir`, `dir/data`, `dir/run`, `dir/log` (and a short socket dir under /tmp when
/// `dir/run` is too deep for a unix socket), hands them to `user`, and checks `user` can reach them.
pub(super) fn prepare(dir: &Path, user: Option<&OsUser>) -> Result<Layout, EmbeddedError> {
    let abs = std::path::absolute(dir).map_err(io_err("resolve", dir))?;
    fs::create_dir_all(&abs).map_err(io_err("create directory", &abs))?;
    let dir = fs::canonicalize(&abs).map_err(io_err("resolve", &abs))?;
    if let Some(u) = user {
        check_reachable(&dir, u)?;
    }
    own_dir(&dir, 0o750, user)?;
    let data = dir.join("data");
    own_dir(&data, 0o700, user)?;
    let run = dir.join("run");
    own_dir(&run, 0o700, user)?;
    own_dir(&dir.join("log"), 0o750, user)?;

    let marker = dir.join("socket_dir");
    let socket_dir = if run.join(SOCKET_NAME).as_os_str().len() > MAX_SOCKET_PATH {
        let short = Path::new("/tmp").join(format!("spine-pg-{:08x}", fnv1a32(dir.as_os_str().as_encoded_bytes())));
        own_dir(&short, 0o700, user)?;
        fs::write(&marker, format!("{}\n", short.display())).map_err(io_err("write", &marker))?;
        short
    } else {
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err("remove", &marker)(e)),
            _ => run,
        }
    };
    Ok(Layout { log: dir.join("log").join("postgres.log"), data, socket_dir, dir })
}

/// Creates `path` (not its parents) with `mode` if missing, and gives it to `user` (when root).
/// An existing path must be a real directory, and when not root it must be ours.
fn own_dir(path: &Path, mode: u32, user: Option<&OsUser>) -> Result<(), EmbeddedError> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create directory", path)(e)),
    }
    let meta = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
    if !meta.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory (or a symlink)");
        return Err(io_err("use", path)(e));
    }
    let owner = user.map_or_else(sys::geteuid, |u| u.uid);
    if meta.uid() != owner {
        match user {
            Some(u) => std::os::unix::fs::lchown(path, Some(u.uid), Some(u.gid)).map_err(io_err("chown", path))?,
            None => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("owned by uid {}, not by this user (uid {owner})", meta.uid()),
                );
                return Err(io_err("use", path)(e));
            }
        }
    }
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))?;
    }
    Ok(())
}

/// Every ancestor of `dir` must grant `user` search (x) permission, or postgres cannot chdir into
/// its data directory. Supplementary groups are dropped when switching user, so only the primary
/// group counts.
fn check_reachable(dir: &Path, user: &OsUser) -> Result<(), EmbeddedError> {
    for anc in dir.ancestors().skip(1) {
        let meta = fs::metadata(anc).map_err(io_err("inspect", anc))?;
        let mode = meta.permissions().mode();
        let (bit, class) = if meta.uid() == user.uid {
            (0o100, "owner")
        } else if meta.gid() == user.gid {
            (0o010, "group")
        } else {
            (0o001, "others")
        };
        if mode & bit == 0 {
            return Err(EmbeddedError::NotReachable {
                path: anc.to_path_buf(),
                user: user.name.clone(),
                uid: user.uid,
                why: format!(
                    "its mode is {:04o} (owner uid {}, group gid {}), which gives {class} no search (x) permission",
                    mode & 0o7777,
                    meta.uid(),
                    meta.gid()
                ),
            });
        }
    }
    Ok(())
}

/// Finds the PostgreSQL server binaries: `override_` (exclusively, when given), then
/// `pg_config --bindir`, then the highest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir(override_: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    if let Some(dir) = override_ {
        return if has_server(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(EmbeddedError::BinariesNotFound { looked: dir.display().to_string() })
        };
    }
    let mut looked = Vec::new();
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_server(&dir) {
                return Ok(dir);
            }
            looked.push(format!("{} (from pg_config --bindir)", dir.display()));
        }
        _ => looked.push("`pg_config --bindir` (not available)".to_owned()),
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let key = name.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
            Some((key, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.iter().rev().find(|(_, d)| has_server(d)) {
        return Ok(dir.clone());
    }
    looked.push("/usr/lib/postgresql/*/bin".to_owned());
    Err(EmbeddedError::BinariesNotFound { looked: looked.join(", ") })
}

pub(super) fn has_server(dir: &Path) -> bool {
    dir.join("postgres").is_file() && dir.join("initdb").is_file()
}

/// The major version of the server in `bin_dir` as PG_VERSION spells it ("15", "9.6").
pub(super) fn server_major(bin_dir: &Path) -> Result<String, EmbeddedError> {
    let program = bin_dir.join("postgres");
    let out = Command::new(&program)
        .arg("--version")
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| EmbeddedError::Spawn { program: program.clone(), source })?;
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2).unwrap_or_default();
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or_default();
    Ok(match major.parse::<u32>() {
        Ok(m) if m < 10 => format!("{major}.{}", parts.next().unwrap_or("0")),
        _ => major.to_owned(),
    })
}

/// Pids of every process whose working directory is `data` (the postmaster chdirs there and its
/// children inherit it), i.e. every server process of that cluster.
pub(super) fn data_dir_pids(data: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data))
        .collect()
}

/// Whether `pid` is a live postmaster for `data`. When /proc does not tell (another user's process
/// and we are not root), a live pid counts.
pub(super) fn is_live_postmaster(pid: u32, data: &Path) -> bool {
    if !sys::process_exists(pid) {
        return false;
    }
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => cwd == data,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

/// The pid (line 1) and status (line 8: starting/ready/stopping/standby) in postmaster.pid.
pub(super) fn read_pid_file(path: &Path) -> Option<(u32, String)> {
    let text = fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let pid = lines.first()?.trim().parse().ok()?;
    Some((pid, lines.get(7).map(|s| s.trim().to_owned()).unwrap_or_default()))
}

/// 32-bit FNV-1a: a stable, dependency-free name hash.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}
