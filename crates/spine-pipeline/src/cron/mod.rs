//! The cron scheduler: turns due schedule ticks into jobs. Any number of schedulers may run (one
//! in each `spine up` / `spine worker` process): the store's `fire_due` locks due schedules
//! `FOR UPDATE SKIP LOCKED` and advances them in the same transaction, so each tick enqueues
//! exactly one job whoever gets there first. Which ticks fire after downtime (catch-up) and how
//! DST is read are described in `spine_core::cron`.

use std::time::Duration;

use chrono::Utc;
use spine_store::StoreError;
use spine_store::queue::schedules;
use sqlx::PgPool;

use crate::supervisor::Shutdown;

/// The pause when the earliest due tick is being fired by another scheduler.
const BUSY_RETRY: Duration = Duration::from_millis(10);

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// The longest sleep between checks (new or resumed schedules are seen within this).
    pub interval: Duration,
    /// The most jobs one step enqueues; a full step is followed at once by another.
    pub max_per_tick: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(1), max_per_tick: 500 }
    }
}

pub struct Scheduler {
    pool: PgPool,
    config: SchedulerConfig,
}

impl Scheduler {
    pub fn new(pool: PgPool, config: SchedulerConfig) -> Self {
        Self { pool, config }
    }

    /// Fires due ticks until shutdown. Database errors are logged and retried after `interval`;
    /// this returns only at shutdown.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), StoreError> {
        let interval = self.config.interval.max(Duration::from_millis(10));
        let max = self.config.max_per_tick.max(1);
        loop {
            if shutdown.is_shutting_down() {
                return Ok(());
            }
            let pause = match self.step(max).await {
                Ok(true) => Duration::ZERO,
                Ok(false) => self.until_next_due(interval).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cron scheduler step failed; retrying");
                    interval
                }
            };
            if pause.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One `fire_due`; true when it used the whole budget (more may be due).
    async fn step(&self, max: usize) -> Result<bool, StoreError> {
        let fired = schedules::fire_due(&self.pool, Utc::now(), max).await?;
        for f in &fired {
            if f.duplicate {
                tracing::info!(tenant = %f.tenant_id, schedule = %f.schedule_id, name = %f.name, kind = %f.kind,
                    tick = %f.tick, job = %f.job_id, "cron tick's job already queued");
            } else {
                tracing::info!(tenant = %f.tenant_id, schedule = %f.schedule_id, name = %f.name, kind = %f.kind,
                    tick = %f.tick, job = %f.job_id, "cron tick fired");
            }
        }
        Ok(fired.len() >= max)
    }

    /// How long to sleep: until the earliest next tick, at most `interval`. A tick already due
    /// here is held by another scheduler's transaction: look again shortly.
    async fn until_next_due(&self, interval: Duration) -> Duration {
        match schedules::next_due_at(&self.pool).await {
            Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or(BUSY_RETRY).clamp(BUSY_RETRY, interval),
            Ok(None) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "cron scheduler could not read the next tick");
                interval
            }
        }
    }
}
