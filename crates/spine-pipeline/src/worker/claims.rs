//! The worker's claim in flight and what the last one found.
//!
//! One claim at a time: on two cores, a second concurrent claim (even on a disjoint shard of the
//! ready index) made every claim and result write slower through page and WAL contention, and the
//! burn-down no faster (measured; decision 0015). A claim that comes back short means the
//! queue is drained: wait for a notification or the poll timer.

use std::time::Duration;

use spine_store::StoreError;
use spine_store::queue::{self, ClaimedJob};
use sqlx::PgPool;
use tokio::task::{JoinError, JoinHandle};

use super::config::WorkerConfig;

type ClaimResult = Result<Vec<ClaimedJob>, StoreError>;

#[derive(Default)]
pub(super) struct Claims {
    /// The claim in flight, with how many jobs it asked for.
    running: Option<(JoinHandle<ClaimResult>, usize)>,
    /// The last claim came back short (or failed).
    pub(super) drained: bool,
}

impl Claims {
    pub(super) fn is_empty(&self) -> bool {
        self.running.is_none()
    }

    /// Starts a claim if one is due, given the jobs held; returns whether it did.
    pub(super) fn start(&mut self, pool: &PgPool, cfg: &WorkerConfig, held: usize) -> bool {
        if self.drained || self.running.is_some() {
            return false;
        }
        let room = cfg.max_held().saturating_sub(held);
        if room < cfg.claim_step() {
            return false;
        }
        let limit = room.min(cfg.claim_batch.max(1));
        let (pool, id, kinds, lease) = (pool.clone(), cfg.id.clone(), cfg.kinds.clone(), cfg.lease);
        let task = tokio::spawn(async move { run(pool, id, kinds, limit as i64, lease).await });
        self.running = Some((task, limit));
        true
    }

    /// The claim in flight, once it finishes (pending while there is none).
    pub(super) async fn next(&mut self) -> Result<ClaimResult, JoinError> {
        match self.running.as_mut() {
            Some((task, _)) => task.await,
            None => std::future::pending().await,
        }
    }

    /// Books the finished claim; returns its jobs (empty after an error, which is logged).
    pub(super) fn done(&mut self, res: Result<ClaimResult, JoinError>, worker: &str) -> Vec<ClaimedJob> {
        let limit = self.running.take().map_or(0, |(_, limit)| limit);
        match res {
            Ok(Ok(jobs)) => {
                self.drained = jobs.len() < limit;
                jobs
            }
            Ok(Err(e)) => {
                tracing::warn!(worker, error = %e, "claiming jobs failed; retrying");
                self.drained = true;
                Vec::new()
            }
            Err(e) => {
                // Only a panic gets here; the claim's jobs (if any) come back when their leases lapse.
                tracing::error!(worker, error = %e, "the claim task failed");
                self.drained = true;
                Vec::new()
            }
        }
    }
}

async fn run(pool: PgPool, worker: String, kinds: Option<Vec<String>>, limit: i64, lease: Duration) -> ClaimResult {
    queue::claim(&pool, &worker, kinds.as_deref(), limit, lease).await
}
