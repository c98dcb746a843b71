//! The job worker: claims due jobs, runs their handlers, writes the results back.
//!
//! - Up to `concurrency` handlers run at once (a `JoinSet`); claims take as many jobs as fit, in
//!   one statement, while the handlers already claimed keep running.
//! - Results go to one flusher task that writes everything accumulated so far with one
//!   `queue::finish` call (group commit). A failed write is retried; if the process dies first,
//!   the jobs run again once their leases lapse (at least once).
//! - An idle worker waits for a NOTIFY on `queue::CHANNEL` or the poll timer; heartbeats renew
//!   the worker's own lease (also while idle) and those of the jobs it holds; a reaper puts jobs
//!   of workers whose lease lapsed back in the queue (decision 0028). A worker that stops
//!   cleanly removes its lease.
//! - A handler panic is caught and recorded as an `internal` failure with the panic message; a
//!   kind without a handler is quarantined as `invalid`.
//! - Shutdown: stop claiming, let handlers finish within `shutdown_grace`, abort and release the
//!   rest (queued again, the attempt not counted), write the results, return.

mod background;
mod claims;
mod config;
mod handlers;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use spine_core::jobs::{AfterFailure, ErrorClass, JobError, RetryPolicy};
use spine_store::queue::{self, ClaimedJob, Finish, Finished};
use spine_store::{Store, StoreError};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};

pub use config::WorkerConfig;
pub use handlers::{BoxFuture, HandlerFn, Handlers, JobContext};
pub use stats::{Histogram, HistogramSnapshot, StatsSnapshot, WorkerStats};

use crate::Shutdown;
use background::Shared;
use claims::Claims;

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
        let shared = Arc::new(Shared::new(queue_pool.clone(), self.cfg.clone(), self.stats.clone()));
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
                    }
                    self.claimed(jobs, stopping.is_some());
                }
                Some(res) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.joined(res),
                _ = self.shared.wake.notified(), if claims.drained && stopping.is_none() => claims.drained = false,
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

    fn start(&mut self, held: Held) {
        let handlers = self.w.handlers.clone();
        let Some(entry) = handlers.get(&held.job.kind) else {
            let err = JobError::new(ErrorClass::Invalid, format!("no handler for kind {}", held.job.kind));
            let outcome = Finish::Quarantined { class: err.class, message: err.message };
            self.send(&held, Instant::now(), Instant::now(), outcome);
            return;
        };
        let mut group = vec![held];
        if let Some((_, max)) = &entry.batch {
            self.take_batch(&mut group, *max);
        }
        let started = Instant::now();
        let ctxs: Vec<JobContext> =
            group.iter().map(|h| JobContext::new(&h.job, self.w.store.clone(), self.worker_id.clone())).collect();
        let running: Vec<Running> = group
            .into_iter()
            .zip(&ctxs)
            .map(|(held, ctx)| Running { held, started, recorded: ctx.recorded() })
            .collect();
        for r in &running {
            let latency =
                db_time(&r.held, started).signed_duration_since(r.held.job.run_at).to_std().unwrap_or_default();
            self.shared.stats.claim_latency.observe(latency);
        }
        WorkerStats::add(&self.shared.stats.in_flight, running.len() as u64);
        // Handlers are called inside the task, so even a panic before their first await is caught.
        let handle = match &entry.batch {
            Some((batch, _)) if ctxs.len() > 1 => {
                let (batch, n) = (batch.clone(), ctxs.len());
                self.tasks.spawn(async move {
                    let mut results = batch(ctxs).await;
                    results.truncate(n);
                    while results.len() < n {
                        results.push(Err(JobError::new(
                            ErrorClass::Internal,
                            "the batch handler returned too few results",
                        )));
                    }
                    let ended = Instant::now();
                    results.into_iter().map(|r| (r, ended)).collect()
                })
            }
            _ => {
                let run = entry.run.clone();
                let pool = self.w.store.pool().clone();
                let ctx = ctxs.into_iter().next().expect("a group has a job");
                self.tasks.spawn(async move { vec![run_one(run, ctx, pool).await] })
            }
        };
        self.running.insert(handle.id(), running);
    }

    /// Adds to `group` (one job, of a batch kind) the buffered jobs of its kind and tenant, up to
    /// `max` in all; jobs that call a connection run alone.
    fn take_batch(&mut self, group: &mut Vec<Held>, max: usize) {
        let first = &group[0].job;
        if first.connection_id.is_some() {
            return;
        }
        let (kind, tenant) = (first.kind.clone(), first.tenant_id);
        let mut i = 0;
        while group.len() < max && i < self.buffer.len() {
            let j = &self.buffer[i].job;
            if j.kind == kind && j.tenant_id == tenant && j.connection_id.is_none() {
                group.extend(self.buffer.remove(i));
            } else {
                i += 1;
            }
        }
    }

    fn joined(&mut self, res: Result<(tokio::task::Id, Outcome), JoinError>) {
        let (id, result) = match res {
            Ok((id, outs)) => (id, Ok(outs)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(group) = self.running.remove(&id) else { return };
        let outs: Vec<(Ran, Instant)> = match result {
            Ok(outs) => outs.into_iter().map(|(r, ended)| (Ran::Done(r), ended)).collect(),
            Err(e) if e.is_panic() => {
                WorkerStats::add(&self.shared.stats.panics, 1);
                let msg = panic_message(e.into_panic());
                let jobs: Vec<_> = group.iter().map(|r| r.held.job.id).collect();
                tracing::error!(worker = %self.w.cfg.id, ?jobs, kind = %group[0].held.job.kind, panic = %msg, "job handler panicked");
                let err = JobError::new(ErrorClass::Internal, format!("handler panicked: {msg}"));
                group.iter().map(|_| (Ran::Done(Err(err.clone())), Instant::now())).collect()
            }
            // Aborted at the end of the shutdown grace.
            Err(_) => group.iter().map(|_| (Ran::Aborted, Instant::now())).collect(),
        };
        for (running, (ran, ended)) in group.into_iter().zip(outs) {
            self.joined_one(running, ran, ended);
        }
    }

    fn joined_one(&mut self, running: Running, ran: Ran, ended: Instant) {
        let Running { held, started, recorded } = running;
        self.shared.stats.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.stats.run_duration.observe(ended - started);
        let err = match ran {
            Ran::Done(Ok(())) if recorded.load(std::sync::atomic::Ordering::Acquire) => {
                // Its success committed with the handler's own writes: nothing left to write.
                WorkerStats::add(&self.shared.stats.succeeded, 1);
                WorkerStats::add(&self.shared.stats.succeeded_in_handler, 1);
                self.shared.held().remove(&(held.job.id, held.job.attempts));
                return;
            }
            Ran::Done(Ok(())) => return self.send(&held, started, ended, Finish::Succeeded),
            Ran::Done(Err(err)) => err,
            Ran::Aborted => return self.send(&held, started, ended, Finish::Released),
        };
        if err.deferred {
            let after = err.retry_after.unwrap_or(Duration::from_secs(1));
            let run_at = db_time(&held, ended) + TimeDelta::from_std(after).unwrap_or(TimeDelta::days(1));
            return self.send(&held, started, ended, Finish::Deferred { message: err.message, run_at });
        }
        let default = RetryPolicy::default();
        let policy = self.w.handlers.policy(&held.job.kind).unwrap_or(&default);
        let j = &held.job;
        let outcome = match policy.after_failure(&err, j.attempts, j.max_attempts, rand::random::<f64>()) {
            AfterFailure::RetryIn(d) => Finish::Failed {
                class: err.class,
                message: err.message,
                retry_at: db_time(&held, ended) + TimeDelta::from_std(d).unwrap_or(TimeDelta::days(365)),
            },
            AfterFailure::Quarantine => Finish::Quarantined { class: err.class, message: err.message },
        };
        self.send(&held, started, ended, outcome);
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

/// How a job's handler ended.
enum Ran {
    Done(Result<(), JobError>),
    /// Aborted at the end of the shutdown grace.
    Aborted,
}

/// Runs one job's handler: a job that calls a disabled connection is not run (`invalid`
/// quarantines it with the reason).
async fn run_one(run: HandlerFn, ctx: JobContext, pool: PgPool) -> (Result<(), JobError>, Instant) {
    if let Some(c) = ctx.connection_id {
        match spine_store::queue::blocked_connection(&pool, c).await {
            Ok(Some(why)) => return (Err(JobError::new(ErrorClass::Invalid, why)), Instant::now()),
            Ok(None) => {}
            Err(e) => {
                let err = JobError::new(ErrorClass::Internal, format!("checking connection {c}: {e}"));
                return (Err(err), Instant::now());
            }
        }
    }
    let r = run(ctx).await;
    (r, Instant::now())
}

/// `at` on the database's clock: the claim's timestamp plus the time elapsed here since (so
/// attempt durations and retry times do not depend on this machine's wall clock).
fn db_time(held: &Held, at: Instant) -> DateTime<Utc> {
    held.job.started_at + TimeDelta::from_std(at.saturating_duration_since(held.claimed)).unwrap_or_default()
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(a panic without a message)".to_owned(),
        },
    }
}
