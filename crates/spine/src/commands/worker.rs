//! Background work: job workers, the cron scheduler and the janitor, for `spine up` and
//! `spine worker`.

use std::time::Duration;

use spine_pipeline::cron::{Scheduler, SchedulerConfig};
use spine_pipeline::worker::{Worker, WorkerConfig, WorkerStats};
use spine_pipeline::{Janitor, Supervisor};
use spine_store::Store;
use sqlx::PgPool;

use crate::cli::WorkerArgs;
use crate::config::Settings;
use crate::error::CliError;

/// Starts a worker (with the built-in handlers, or the `kinds` subset), the scheduler and the
/// janitor under `supervisor`. Returns the worker's stats for /metrics.
pub fn spawn(
    supervisor: &mut Supervisor,
    pool: &PgPool,
    settings: &Settings,
    args: &WorkerArgs,
) -> Result<std::sync::Arc<WorkerStats>, CliError> {
    let handlers = spine_pipeline::builtin::handlers();
    let known = handlers.kinds();
    let kinds = match &args.kinds {
        Some(list) => {
            let wanted: Vec<String> = list.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
            if let Some(unknown) = wanted.iter().find(|k| !known.contains(k)) {
                return Err(CliError::usage(format!(
                    "no handler for kind {unknown:?}; known kinds: {}",
                    known.join(", ")
                )));
            }
            wanted
        }
        None => known,
    };
    let concurrency = args.concurrency.unwrap_or(settings.jobs.concurrency);
    if concurrency == 0 {
        return Err(CliError::usage("--concurrency must be at least 1"));
    }
    let id = args.id.clone().unwrap_or_else(|| WorkerConfig::unique_id(&crate::commands::up::hostname()));
    let mut cfg = WorkerConfig::new(id, concurrency).with_lease(Duration::from_secs(settings.jobs.lease_secs.max(1)));
    cfg.kinds = Some(kinds);
    cfg.shutdown_grace = Duration::from_secs(settings.jobs.shutdown_grace_secs);
    let worker = Worker::new(pool.clone(), Store::new(pool.clone()), handlers, cfg);
    let stats = worker.stats();
    tracing::info!(worker = worker.id(), concurrency, "job worker starting");
    supervisor.spawn("worker", move |sd| worker.run(sd));
    let scheduler = Scheduler::new(pool.clone(), SchedulerConfig::default());
    supervisor.spawn("cron", move |sd| scheduler.run(sd));
    let retention = Duration::from_secs(settings.jobs.retention_days * 86_400);
    let janitor = Janitor::new(pool.clone(), retention, Duration::from_secs(600));
    supervisor.spawn("janitor", move |sd| janitor.run(sd));
    Ok(stats)
}

/// `spine worker`: only background work, until SIGINT/SIGTERM.
pub async fn run(pool: &PgPool, settings: &Settings, args: WorkerArgs) -> Result<(), CliError> {
    let mut supervisor = Supervisor::new();
    spawn(&mut supervisor, pool, settings, &args)?;
    crate::output::text("Spine worker running (SIGINT or SIGTERM to stop)");
    crate::commands::up::shutdown_signal().await;
    tracing::info!("worker shutting down");
    supervisor.shutdown().await;
    Ok(())
}
