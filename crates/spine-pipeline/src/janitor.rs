//! Prunes finished (succeeded or cancelled) jobs older than the retention period, in batches, so
//! the jobs table stays the size of the work in hand. Quarantined jobs stay until a person acts.

use std::time::Duration;

use spine_store::StoreError;
use spine_store::queue;
use sqlx::PgPool;

use crate::supervisor::Shutdown;

pub struct Janitor {
    pool: PgPool,
    retention: Duration,
    every: Duration,
    batch: i64,
}

impl Janitor {
    pub fn new(pool: PgPool, retention: Duration, every: Duration) -> Self {
        Self { pool, retention, every, batch: 1000 }
    }

    /// One pass: deletes batches until less than a full batch is left. Returns how many went.
    pub async fn prune_once(&self) -> Result<u64, StoreError> {
        let before =
            chrono::Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::days(36_500));
        let mut total = 0;
        loop {
            let n = queue::prune(&self.pool, before, self.batch).await?;
            total += n;
            if n < self.batch as u64 {
                return Ok(total);
            }
        }
    }

    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), StoreError> {
        loop {
            match self.prune_once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "pruned finished jobs past retention"),
                Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed; will retry"),
            }
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }
}
