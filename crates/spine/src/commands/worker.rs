//! Background work: job workers, the cron scheduler and the janitor, for `spine up` and
//! `spine worker`.

use std::time::Duration;

use spine_pipeline::cron::{Scheduler, SchedulerConfig};
use spine_pipeline::process::PROCESS_FILE_KIND;
use spine_pipeline::worker::{Worker, WorkerConfig, WorkerStats};
use spine_pipeline::{Janitor, StatisticsKeeper, Supervisor};
use spine_store::Store;
use spine_store::blob::BlobStore;
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
    blobs: BlobStore,
) -> Result<std::sync::Arc<WorkerStats>, CliError> {
    let policies = settings.jobs.retry_policies().map_err(CliError::usage)?;
    let process_policy = policies.get(PROCESS_FILE_KIND).cloned().unwrap_or_default();
    let handlers = spine_pipeline::process::with_handlers(
        spine_pipeline::builtin::handlers_with(&policies),
        blobs,
        process_policy,
    );
    let known = handlers.kinds();
    if let Some(unknown) = policies.keys().find(|k| !known.contains(k)) {
        return Err(CliError::usage(format!(
            "jobs.retry names kind {unknown:?}, which has no handler; known kinds: {}",
            known.join(", ")
        )));
    }
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
    let blobs = crate::commands::fsck::open_blobs(settings).await?;
    let mut supervisor = Supervisor::new();
    let stats = spawn(&mut supervisor, pool, settings, &args, blobs)?;
    // `spine up` runs one too; they take turns through an advisory lock.
    let keeper = StatisticsKeeper::new(pool.clone());
    supervisor.spawn("statistics", |s| keeper.run(s));
    let metrics = match &args.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| CliError::config(format!("--metrics-listen {addr}: {e}")))?;
            let local = listener.local_addr().map_err(|e| CliError::failed(e.to_string()))?;
            let state = spine_api::AppState {
                store: Store::new(pool.clone()),
                // Nothing here signs or checks sessions; a throwaway key keeps the type whole.
                signer: spine_core::auth::SessionSigner::new(spine_core::secret::Secret::new(
                    [*uuid::Uuid::new_v4().as_bytes(), *uuid::Uuid::new_v4().as_bytes()].concat(),
                )),
                config: Default::default(),
                metrics: Some(std::sync::Arc::new(move || stats.render_prometheus())),
                registrar: None,
                keyring: None,
            };
            crate::output::text(&format!("metrics at http://{local}/metrics"));
            Some(tokio::spawn(async move {
                axum::serve(listener, spine_api::metrics_router(state))
                    .with_graceful_shutdown(crate::commands::up::shutdown_signal())
                    .await
            }))
        }
        None => None,
    };
    crate::output::text("Spine worker running (SIGINT or SIGTERM to stop)");
    crate::commands::up::shutdown_signal().await;
    tracing::info!("worker shutting down");
    supervisor.shutdown().await;
    if let Some(m) = metrics {
        m.abort();
    }
    Ok(())
}
