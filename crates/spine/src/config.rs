//! Typed settings: built-in defaults ← optional TOML file (`--config`, default `spine.toml` when
//! present) ← `SPINE_*` environment variables (nested keys with `__`, e.g. `SPINE_API__LISTEN`).
//! `DATABASE_URL` is honoured as well as `SPINE_DATABASE_URL`. Secrets are `Secret` values:
//! they print as `[redacted]` everywhere, `config show` included.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use spine_core::secret::Secret;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// PostgreSQL URL. Unset: Spine runs its own private cluster under `data_dir/pg`.
    pub database_url: Option<Secret<String>>,
    /// Where Spine keeps its state (private cluster, signing key, later blobs).
    pub data_dir: PathBuf,
    pub api: ApiSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub postgres: PostgresSettings,
    pub jobs: JobSettings,
    pub vault: VaultSettings,
    pub blobs: BlobSettings,
    /// Watched inbox folders (`[inbox]`, `[[inbox.folders]]`).
    pub inbox: spine_connectors::inbox::InboxSettings,
}

/// Where blobs (the bytes of every registered file) are kept; see decision 0016.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobSettings {
    /// `local` (a directory) or `s3` (an S3-compatible bucket, `blobs.s3`).
    pub backend: BlobBackend,
    /// Directory of the local store. Unset: `data_dir/blobs`.
    pub root: Option<PathBuf>,
    /// The bucket when `backend = "s3"`.
    pub s3: Option<S3Settings>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    Local,
    S3,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    /// Endpoint URL of a non-AWS server (path-style requests); unset: AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_s3_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret<String>>,
    /// Allow a plain `http://` endpoint (loopback servers).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// Master keys as `id:base64-of-32-bytes` (secrets). Never stored in the database.
    pub master_keys: Vec<Secret<String>>,
    /// Id of the key new secrets are sealed with. Unset: the last key listed (master_keys, then the file).
    pub active_key: Option<String>,
    /// File with one `id:base64` key per line (`#` comments). Unset: `data_dir/vault.keys` when it
    /// exists; `spine up` creates that file (mode 0600) with a new key when no key is configured.
    pub key_file: Option<PathBuf>,
    /// How long a replaced secret's old version stays readable before it is destroyed, in seconds.
    pub replaced_grace_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// Run job workers, the cron scheduler and the janitor inside `spine up`.
    pub run_in_up: bool,
    /// Handlers running at once per process.
    pub concurrency: usize,
    /// A job's lease; a worker that stops heartbeating loses its jobs after this.
    pub lease_secs: u64,
    /// At shutdown, how long in-flight jobs may take before they are handed back.
    pub shutdown_grace_secs: u64,
    /// Succeeded and cancelled jobs are deleted after this many days.
    pub retention_days: u64,
    /// Retry schedules per job kind, replacing the default (5 s, 5 min, 30 min, 2 h, 5 h, 10 h):
    /// `[jobs.retry."spine.http.check"] schedule_secs = [1, 10, 60]`, optional `jitter` (0.2).
    #[serde(default)]
    pub retry: std::collections::BTreeMap<String, RetrySettings>,
}

/// One kind's retry schedule: the delay before retry n is `schedule_secs[n-1]` (the last repeats),
/// ± `jitter`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub schedule_secs: Vec<f64>,
    #[serde(default)]
    pub jitter: Option<f64>,
}

impl JobSettings {
    /// The configured retry policies, checked.
    pub fn retry_policies(&self) -> Result<std::collections::BTreeMap<String, spine_core::jobs::RetryPolicy>, String> {
        let mut out = std::collections::BTreeMap::new();
        for (kind, r) in &self.retry {
            let bad = |why: &str| format!("jobs.retry.\"{kind}\": {why}");
            if r.schedule_secs.is_empty() {
                return Err(bad("schedule_secs needs at least one delay"));
            }
            let mut schedule = Vec::new();
            for s in &r.schedule_secs {
                if !s.is_finite() || *s < 0.0 || *s > 30.0 * 86_400.0 {
                    return Err(bad("every delay must be between 0 and 2592000 seconds"));
                }
                schedule.push(std::time::Duration::from_secs_f64(*s));
            }
            let mut policy = spine_core::jobs::RetryPolicy { schedule, ..Default::default() };
            if let Some(j) = r.jitter {
                if !(0.0..=1.0).contains(&j) {
                    return Err(bad("jitter must be between 0 and 1"));
                }
                policy.jitter = j;
            }
            out.insert(kind.clone(), policy);
        }
        Ok(out)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests running longer are abandoned, in seconds.
    pub request_timeout_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Key that signs session tokens (at least 32 bytes). Unset: generated once and kept in
    /// `data_dir/session.key` (mode 0600).
    pub session_secret: Option<Secret<String>>,
    /// Lifetime of a session token, in seconds.
    pub session_ttl_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `auto` (pretty on a terminal, JSON otherwise), `json` or `pretty`.
    pub format: String,
    /// tracing filter, e.g. `info` or `spine=debug,sqlx=warn`.
    pub level: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Directory with the server binaries; unset searches `pg_config --bindir` and /usr/lib/postgresql/*/bin.
    pub bin_dir: Option<PathBuf>,
    /// OS account the private cluster runs as when Spine runs as root.
    pub os_user: Option<String>,
    /// Connections in Spine's pool.
    pub max_connections: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: None,
            data_dir: PathBuf::from("data"),
            api: ApiSettings { listen: "127.0.0.1:8080".into(), max_body_bytes: 1024 * 1024, request_timeout_secs: 30 },
            auth: AuthSettings { session_secret: None, session_ttl_secs: 12 * 3600 },
            log: LogSettings { format: "auto".into(), level: "info".into() },
            postgres: PostgresSettings { bin_dir: None, os_user: None, max_connections: 10 },
            jobs: JobSettings {
                run_in_up: true,
                concurrency: 8,
                lease_secs: 30,
                shutdown_grace_secs: 30,
                retention_days: 7,
                retry: Default::default(),
            },
            vault: VaultSettings {
                master_keys: Vec::new(),
                active_key: None,
                key_file: None,
                replaced_grace_secs: 86400,
            },
            blobs: BlobSettings { backend: BlobBackend::Local, root: None, s3: None, max_upload_bytes: 1 << 30 },
            inbox: Default::default(),
        }
    }
}

impl Settings {
    /// Defaults, then the file (if given or `spine.toml` exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(f) => fig = fig.merge(Toml::file_exact(f)),
            None if Path::new("spine.toml").exists() => fig = fig.merge(Toml::file_exact("spine.toml")),
            None => {}
        }
        fig = fig
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database_url".into()))
            .merge(Env::prefixed("SPINE_").split("__").ignore(&["PG_OS_USER"]));
        fig.extract().map_err(Box::new)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_secrets_are_masked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SPINE_API__LISTEN", "127.0.0.1:9999");
            jail.set_env("DATABASE_URL", "postgres://u:canary-db-pw@h/db");
            jail.set_env("SPINE_AUTH__SESSION_SECRET", "canary-session-secret-0123456789abcdef");
            let s = Settings::load(None).expect("loads");
            assert_eq!(s.api.listen, "127.0.0.1:9999");
            assert_eq!(s.database_url.as_ref().unwrap().expose(), "postgres://u:canary-db-pw@h/db");
            let shown = serde_json::to_string(&s).unwrap();
            assert!(!shown.contains("canary"), "{shown}");
            assert!(!format!("{s:?}").contains("canary"));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("spine.toml", "[api]\nlisten = \"x\"\nlistne = 1\n")?;
            assert!(Settings::load(None).is_err());
            Ok(())
        });
    }
}
