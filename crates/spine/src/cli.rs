//! Command-line interface. Data goes to stdout (`--json` for machines), logs to stderr.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "spine", version, about = "Spine: the integration spine of QiOS", propagate_version = true)]
pub struct Cli {
    /// Settings file (TOML). Default: ./spine.toml when it exists.
    #[arg(long, global = true, env = "SPINE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run Spine: database (private cluster unless DATABASE_URL is set), migrations, API, workers.
    Up(UpArgs),
    /// Run job workers, the cron scheduler and the janitor (no API), until SIGINT/SIGTERM.
    Worker(WorkerArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Governance of the database schema.
    #[command(subcommand)]
    Governance(GovernanceCmd),
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// API keys and service keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Users.
    #[command(subcommand)]
    User(UserCmd),
    /// Vault master keys: secrets per key, rotation to the active key, retirement.
    #[command(subcommand)]
    Keys(crate::commands::vault::KeysCmd),
    /// Connections: a tenant's configured connector instances (secrets from stdin or --secret-file).
    #[command(subcommand)]
    Connection(crate::commands::connections::ConnectionCmd),
    /// Jobs: list, show with attempts, retry, cancel, requeue, stats.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Cron schedules that enqueue jobs.
    #[command(subcommand)]
    Schedules(SchedulesCmd),
    /// Register files and folders through the registration pipeline (as uploads are).
    Ingest(crate::commands::ingest::IngestArgs),
    /// The review queue of staged rows: list, show, approve, reject, edit, approve-all.
    #[command(subcommand)]
    Review(crate::commands::review::ReviewCmd),
    /// Promote a batch's approved rows to canonical records (idempotent).
    Promote {
        /// Import batch id.
        batch: uuid::Uuid,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Provenance: a record back to its staged row, batch, file version, blob and capture; or a
    /// file, batch, row or capture forward to the records derived from it.
    Trace {
        id: uuid::Uuid,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The import profiles this build ships (for --profile).
    Profiles {
        #[arg(long)]
        json: bool,
    },
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Re-hash every blob and compare with the files that reference them; --repair removes old orphans.
    Fsck(crate::commands::fsck::FsckArgs),
    /// Benchmarks against the configured database.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Listen address for the API (overrides api.listen).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct WorkerArgs {
    /// Handlers running at once (overrides jobs.concurrency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Only these job kinds, comma-separated (default: every kind this build has a handler for).
    #[arg(long)]
    pub kinds: Option<String>,
    /// Worker id (default: host-pid-random); must be unique among running workers.
    #[arg(long)]
    pub id: Option<String>,
    /// Serve Prometheus metrics (queue depth, claim latency, run durations, failures by class) at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9464 (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Job queue scenarios (the graphile-worker driver's definitions); prints `RESULT {json}`.
    Queue(crate::commands::bench::QueueArgs),
    /// Vault: seal+open cost per secret and rotation rate, each beside a baseline.
    Vault(crate::commands::bench_vault::VaultArgs),
    /// Blob store: files of mixed sizes through `BlobStore::put`; throughput and peak RSS.
    Blobs(crate::commands::bench_blobs::BlobsArgs),
    /// Structured staging: parse a CSV/JSON file and COPY it into staging.import_rows; rows/s.
    Staging(crate::commands::bench_staging::StagingArgs),
}

#[derive(Subcommand, Debug)]
pub enum GovernanceCmd {
    /// Compare the live catalog with the qieos registry; exit 1 when anything violates the rules.
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        /// URL-safe name: lowercase letters, digits, '-'.
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// Allow integrations for the tenant.
        #[arg(long)]
        integrations: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant: name, integrations allowlist flag, suspension.
    Update {
        /// Tenant id or slug.
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        /// Allow (true) or refuse (false) integrations for the tenant.
        #[arg(long)]
        integrations: Option<bool>,
        /// Refuse every credential of the tenant.
        #[arg(long, conflicts_with = "activate")]
        suspend: bool,
        /// Undo a suspension.
        #[arg(long)]
        activate: bool,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Create a key; it is printed once and never again.
    Create {
        /// Tenant (id or slug) for a scoped API key.
        #[arg(long, required_unless_present = "service", conflicts_with = "service")]
        tenant: Option<String>,
        /// Create a service role key instead (server-to-server, all tenants).
        #[arg(long)]
        service: bool,
        #[arg(long)]
        name: String,
        /// Scope of an API key; repeat for several (ingest:write, records:read, review:write, connections:admin, jobs:admin, admin).
        #[arg(long = "scope", required_unless_present = "service")]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's API keys, or the service keys without --tenant.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or prefix.
    Revoke { key: String },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user with a role in a tenant. The password is read from stdin (one line).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// owner, editor or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Also make the user a platform admin (may manage every tenant).
        #[arg(long)]
        platform_admin: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the effective settings with secrets masked.
    Show {
        #[arg(long)]
        json: bool,
    },
}

/// Which jobs: by id, or by filter.
#[derive(Args, Debug, Clone, Default)]
pub struct JobSelect {
    /// Tenant id or slug.
    #[arg(long)]
    pub tenant: Option<String>,
    /// queued, running, succeeded, failed, quarantined or cancelled.
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs created at least this many seconds ago.
    #[arg(long, value_name = "SECS")]
    pub older_than: Option<i64>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Subcommand, Debug)]
pub enum JobsCmd {
    /// Enqueue a job for a tenant (e.g. a `spine.http.check`); prints its id.
    Enqueue(EnqueueArgs),
    /// List jobs, newest first.
    List {
        #[command(flatten)]
        select: JobSelect,
        #[arg(long)]
        json: bool,
    },
    /// One job with every attempt.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Run failed (waiting) jobs now: one by id, or all matching the filter.
    Retry(JobActionArgs),
    /// Cancel queued or failed jobs.
    Cancel(JobActionArgs),
    /// Put quarantined jobs back in the queue with a fresh attempt budget.
    Requeue(JobActionArgs),
    /// Depth per state and kind, and the wait of the oldest due job.
    Stats {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct EnqueueArgs {
    /// The job kind, e.g. spine.http.check.
    pub kind: String,
    /// Tenant slug or id.
    #[arg(long)]
    pub tenant: String,
    /// The payload, a JSON object with its `type` tag, e.g. '{"type":"http_check.v1","url":"https://example.org/"}'.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// After this many failed attempts the job is quarantined.
    #[arg(long, default_value_t = 10)]
    pub max_attempts: i32,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    pub priority: i16,
    /// Not before this many seconds from now.
    #[arg(long)]
    pub delay_secs: Option<u64>,
    /// At most one unfinished job per tenant, kind and key.
    #[arg(long)]
    pub dedupe_key: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct JobActionArgs {
    /// A job id; or use the filter options (with --all when no filter is given).
    pub id: Option<String>,
    #[command(flatten)]
    pub select: JobSelect,
    /// Act on every job the action applies to when no filter is given.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SchedulesCmd {
    /// List schedules (all tenants, or one).
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Create a schedule.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Job kind to enqueue at each tick.
        #[arg(long)]
        kind: String,
        /// Cron expression: 5 fields, or 6 with seconds first.
        #[arg(long)]
        cron: String,
        /// IANA time zone.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Job payload (a JSON object).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// After downtime: skip missed ticks, or run_once for all of them.
        #[arg(long, default_value = "skip")]
        catch_up: String,
        #[arg(long)]
        json: bool,
    },
    /// Pause a schedule.
    Pause { id: String },
    /// Resume a paused schedule (the next tick is computed from now).
    Resume { id: String },
    /// Enqueue a job for the schedule now.
    Trigger { id: String },
    /// Delete a schedule (its jobs stay).
    Delete { id: String },
}
