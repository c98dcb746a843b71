//! The job worker: claims due jobs, runs their handlers, writes the results back.
//!
//! - Up to `concurrency` handlers run at once (a `JoinSet`); claims take as many jobs as fit, in
//!   one statement, while the handlers already claimed keep running.
//! - A kind registered with a batch handler gets the held jobs of its kind and tenant in one call
//!   (`run_jobs.rs`); each job still ends with its own result. A handler may record its job's
//!   success in its own transaction (decision 0030): then no result is written for it here.
//! - Results go to one flusher task that writes everything accumulated so far with one
//!   `queue::finish` call (group commit). A failed write is retried; if the process dies first,
//!   the jobs run again once their leases lapse (at least once).
//! - An idle worker waits for a NOTIFY on `queue::CHANNEL` or the poll timer; for kinds that gain
//!   from batches it may wait a short window more while their jobs keep coming (`wake.rs`,
//!   decision 0034). Heartbeats renew the worker's own lease (also while idle) and those of the
//!   jobs it holds; a reaper puts jobs of workers whose lease lapsed back in the queue (decision
//!   0028). A worker that stops cleanly removes its lease.
//! - A handler panic is caught and recorded as an `internal` failure with the panic message; a
//!   kind without a handler is quarantined as `invalid`.
//! - Shutdown: stop claiming, let handlers finish within `shutdown_grace`, abort and release the
//!   rest (queued again, the attempt not counted), write the results, return.

mod background;
mod claims;
mod config;
mod handlers;
mod run_jobs;
mod stats;
mod wake;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use spine_core::jobs::JobError;
use spine_store::queue::{self, ClaimedJob, Finish, Finished};
use spine_store::{Store, StoreError};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use config::WorkerConfig;
pub use handlers::{BoxFuture, HandlerFn, Handlers, JobContext};
pub use stats::{Histogram, HistogramSnapshot, StatsSnapshot, WorkerStats};

use crate::Shutdown;
use background::Shared;
use claims::Claims;
use wake::{Linger, Wakes};

/// Runs job handlers until shutdown. See the module documentation.
pub struct Worker {
    pool: PgPool,
    store: Store,
    handlers: Arc<Handlers>,
    cfg: WorkerConfig,
    stats: Arc<WorkerStats>,
}

/// A claimed job with the moment (on this machine's monotonic clock) it was claimed.
struct Held {
    job: ClaimedJob,
    claimed: Instant,
}

/// A running handler.
struct Running {
    held: Held,
    started: Instant,
    /// Set when the handler recorded its success itself ([`JobContext::succeeded_in_transaction`]).
    recorded: Arc<std::sync::atomic::AtomicBool>,
}

/// What a task returns: each of its jobs' result, with when it ended (one job, or a batch).
type Outcome = Vec<(Result<(), JobError>, Instant)>;
/// Result writes in flight at once.
const FLUSHERS: usize = 2;

impl Worker {
    pub fn new(pool: PgPool, store: Store, handlers: Handlers, mut cfg: WorkerConfig) -> Self {
        cfg.concurrency = cfg.concurrency.max(1);
        cfg.claim_batch = cfg.claim_batch.max(1);
        Self { pool, store, handlers: Arc::new(handlers), cfg, stats: Arc::new(WorkerStats::default()) }
    }

    /// Counters and timings, readable while the worker runs.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    /// Runs until `shutdown` resolves, then winds down (see the module documentation). Database
    /// errors while running are logged and retried; the error returned is that of the last
    /// result write at shutdown, when it could not be done (those jobs run again later).
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), StoreError> {
        let (claim_pool, queue_pool) = background::worker_pools(&self.pool, FLUSHERS as u32);
        let wakes = Wakes::new(self.handlers.linger_windows());
        let shared = Arc::new(Shared::new(queue_pool.clone(), self.cfg.clone(), self.stats.clone(), wakes));
        let lpool = background::listener_pool(&self.pool);
        // LISTEN before the first claim, so no notification falls between them.
        let listener = match tokio::time::timeout(Duration::from_secs(5), background::connect_listener(&lpool)).await {
            Ok(Ok(l)) => Some(l),
            Ok(Err(e)) => {
                tracing::warn!(worker = %self.cfg.id, error = %e, "LISTEN failed; will retry, polling meanwhile");
                None
            }
            Err(_) => None,
        };
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let give_up = self.cfg.shutdown_grace.max(Duration::from_secs(5));
        let results: background::Results = Arc::new(tokio::sync::Mutex::new(done_rx));
        let flushers: Vec<_> = (0..FLUSHERS)
            .map(|_| tokio::spawn(background::flush_loop(shared.clone(), results.clone(), give_up)))
            .collect();
        let mut helpers = vec![
            tokio::spawn(background::listen_loop(shared.clone(), lpool.clone(), listener)),
            tokio::spawn(background::reap_loop(shared.clone(), self.cfg.reap_every)),
        ];
        if let Some(every) = self.cfg.heartbeat_every {
            helpers.push(tokio::spawn(background::heartbeat_loop(shared.clone(), every)));
        }
        tracing::info!(worker = %self.cfg.id, concurrency = self.cfg.concurrency, kinds = ?self.cfg.kinds, "worker started");

        let mut run = Loop {
            w: &self,
            claim_pool: &claim_pool,
            shared: &shared,
            done: done_tx,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            buffer: VecDeque::new(),
            worker_id: Arc::from(self.cfg.id.as_str()),
        };
        run.main(&mut shutdown).await;
        drop(run);

        let mut flushed = Ok(());
        for f in flushers {
            match f.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => flushed = Err(e),
                Err(e) => tracing::error!(worker = %self.cfg.id, error = %e, "a result flusher panicked"),
            }
        }
        for h in helpers {
            h.abort();
            let _ = h.await;
        }
        if flushed.is_ok() {
            // Everything held was finished or released: nothing for a reaper to look for.
            if let Err(e) = queue::forget_worker(&queue_pool, &self.cfg.id).await {
                tracing::warn!(worker = %self.cfg.id, error = %e, "could not remove the worker's lease; it lapses");
            }
        }
        lpool.close().await;
        claim_pool.close().await;
        queue_pool.close().await;
        tracing::info!(worker = %self.cfg.id, stats = ?self.stats.snapshot(), "worker stopped");
        flushed
    }
}

struct Loop<'a> {
    w: &'a Worker,
    claim_pool: &'a PgPool,
    shared: &'a Arc<Shared>,
    done: mpsc::UnboundedSender<Finished>,
    tasks: JoinSet<Outcome>,
    running: HashMap<tokio::task::Id, Vec<Running>>,
    /// Claimed jobs waiting for a free slot.
    buffer: VecDeque<Held>,
    /// The worker's id, for the leases handlers see.
    worker_id: Arc<str>,
}

impl Loop<'_> {
    async fn main(&mut self, shutdown: &mut Shutdown) {
        let cfg = &self.w.cfg;
        let mut claims = Claims::default();
        let mut next_poll = tokio::time::Instant::now();
        // Set at shutdown: the grace deadline.
        let mut stopping: Option<tokio::time::Instant> = None;
        let mut aborted = false;
        let mut linger = Linger::default();
        loop {
            while let Some(res) = self.tasks.try_join_next_with_id() {
                self.joined(res);
            }
            while self.tasks.len() < cfg.concurrency
                && let Some(h) = self.buffer.pop_front()
            {
                self.start(h);
            }
            let held = self.tasks.len() + self.buffer.len();
            if stopping.is_none() && claims.start(self.claim_pool, cfg, held) {
                next_poll = tokio::time::Instant::now() + cfg.poll_every;
                WorkerStats::add(&self.shared.stats.claims, 1);
                continue;
            }
            if stopping.is_some() && self.tasks.is_empty() && claims.is_empty() {
                return;
            }
            tokio::select! {
                biased;
                _ = shutdown.wait(), if stopping.is_none() => {
                    tracing::info!(worker = %cfg.id, in_flight = self.tasks.len(), "worker stopping");
                    stopping = Some(tokio::time::Instant::now() + cfg.shutdown_grace);
                    for h in std::mem::take(&mut self.buffer) {
                        self.release(&h, Instant::now());
                    }
                }
                res = claims.next(), if !claims.is_empty() => {
                    let jobs = claims.done(res, &cfg.id);
                    if jobs.is_empty() {
                        WorkerStats::add(&self.shared.stats.empty_claims, 1);
                    } else {
                        linger.found_jobs(tokio::time::Instant::now());
                    }
                    self.claimed(jobs, stopping.is_some());
                }
                Some(res) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.joined(res),
                _ = self.shared.wakes.notified(), if claims.drained && stopping.is_none() => {
                    // A lingering claim is the poll timer brought forward (the next claim resets it).
                    let now = tokio::time::Instant::now();
                    match linger.claim_at(self.shared.wakes.take(), now) {
                        Some(at) if at <= now => claims.drained = false,
                        Some(at) if at < next_poll => {
                            next_poll = at;
                            WorkerStats::add(&self.shared.stats.lingered, 1);
                        }
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(next_poll), if claims.drained && stopping.is_none() => claims.drained = false,
                _ = tokio::time::sleep_until(stopping.unwrap_or_else(tokio::time::Instant::now)), if stopping.is_some() && !aborted => {
                    tracing::warn!(worker = %cfg.id, jobs = self.tasks.len(), "shutdown grace over; releasing unfinished jobs");
                    self.tasks.abort_all();
                    aborted = true;
                }
            }
        }
    }

    fn claimed(&mut self, jobs: Vec<ClaimedJob>, stopping: bool) {
        let now = Instant::now();
        WorkerStats::add(&self.shared.stats.claimed, jobs.len() as u64);
        let mut held = self.shared.held();
        held.extend(jobs.iter().map(|j| (j.id, j.attempts)));
        drop(held);
        for job in jobs {
            let h = Held { job, claimed: now };
            if stopping {
                self.release(&h, now);
            } else {
                self.buffer.push_back(h);
            }
        }
    }

    fn release(&self, held: &Held, at: Instant) {
        self.send(held, at, at, Finish::Released);
    }

    fn send(&self, held: &Held, started: Instant, ended: Instant, outcome: Finish) {
        let f = Finished {
            id: held.job.id,
            attempt: held.job.attempts,
            started_at: db_time(held, started),
            finished_at: db_time(held, ended),
            outcome,
        };
        // The flusher lives until this loop has dropped its sender.
        let _ = self.done.send(f);
    }
}

/// `at` on the database's clock: the claim's timestamp plus the time elapsed here since (so
/// attempt durations and retry times do not depend on this machine's wall clock).
fn db_time(held: &Held, at: Instant) -> DateTime<Utc> {
    held.job.started_at + TimeDelta::from_std(at.saturating_duration_since(held.claimed)).unwrap_or_default()
}
