//! The worker's helper tasks: the result flusher (group commit), heartbeats, the reaper and the
//! LISTEN connection.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use spine_store::StoreError;
use spine_store::nodelay::PgPoolOptionsExt;
use spine_store::queue::{self, Finish, Finished};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::config::WorkerConfig;
use super::stats::WorkerStats;
use super::wake::Wakes;

/// The most results one `finish` call writes.
const MAX_FLUSH: usize = 5_000;

/// State the main loop shares with the helper tasks.
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) cfg: WorkerConfig,
    pub(crate) stats: Arc<WorkerStats>,
    /// (job, attempt) whose lease this worker holds: claimed, and not yet written back.
    held: Mutex<HashSet<(Uuid, i32)>>,
    /// Something may be due: a notification, a reaped lease, a reconnected listener.
    pub(crate) wakes: Wakes,
}

impl Shared {
    pub(crate) fn new(pool: PgPool, cfg: WorkerConfig, stats: Arc<WorkerStats>, wakes: Wakes) -> Self {
        Self { pool, cfg, stats, held: Mutex::new(HashSet::new()), wakes }
    }

    pub(crate) fn held(&self) -> MutexGuard<'_, HashSet<(Uuid, i32)>> {
        // A panic while holding this lock cannot leave the set inconsistent: use it anyway.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The results channel, shared by the flushers.
pub(crate) type Results = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Finished>>>;

/// Writes results as they come: everything that arrived while the previous `finish` ran goes
/// into the next one. Several flushers share one channel, so one gathers the next batch while
/// another's is being written. A failed write is retried with backoff; once the channel is closed
/// (shutdown), it gives up after `give_up` and returns the error (those jobs run again when their
/// leases lapse).
pub(crate) async fn flush_loop(shared: Arc<Shared>, rx: Results, give_up: Duration) -> Result<(), StoreError> {
    let mut batch: Vec<Finished> = Vec::new();
    let mut closed_at: Option<Instant> = None;
    let mut backoff = Duration::from_millis(20);
    loop {
        {
            let mut rx = rx.lock().await;
            if batch.is_empty() {
                match rx.recv().await {
                    Some(f) => batch.push(f),
                    None => return Ok(()),
                }
            }
            while batch.len() < MAX_FLUSH {
                match rx.try_recv() {
                    Ok(f) => batch.push(f),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed_at.get_or_insert_with(Instant::now);
                        break;
                    }
                }
            }
        }
        match queue::finish(&shared.pool, &shared.cfg.id, &batch).await {
            Ok(applied) => {
                account(&shared.stats, &batch, &applied);
                let mut held = shared.held();
                for f in &batch {
                    held.remove(&(f.id, f.attempt));
                }
                drop(held);
                batch.clear();
                backoff = Duration::from_millis(20);
            }
            Err(e) => {
                WorkerStats::add(&shared.stats.flush_errors, 1);
                tracing::warn!(worker = %shared.cfg.id, error = %e, results = batch.len(), "writing job results failed; retrying");
                let closed = {
                    let rx = rx.lock().await;
                    rx.is_closed() && rx.is_empty()
                };
                if closed {
                    let since = *closed_at.get_or_insert_with(Instant::now);
                    if since.elapsed() >= give_up {
                        tracing::error!(worker = %shared.cfg.id, results = batch.len(),
                            "giving up writing job results; they run again when their leases lapse");
                        return Err(e);
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn account(stats: &WorkerStats, batch: &[Finished], applied: &[Uuid]) {
    WorkerStats::add(&stats.flushes, 1);
    let applied: HashSet<&Uuid> = applied.iter().collect();
    for f in batch {
        if !applied.contains(&f.id) {
            WorkerStats::add(&stats.stale, 1);
            continue;
        }
        match &f.outcome {
            Finish::Succeeded => WorkerStats::add(&stats.succeeded, 1),
            Finish::Failed { class, .. } => {
                WorkerStats::add(&stats.failed, 1);
                stats.failure(*class);
            }
            Finish::Quarantined { class, .. } => {
                WorkerStats::add(&stats.quarantined, 1);
                stats.failure(*class);
            }
            Finish::Released => WorkerStats::add(&stats.released, 1),
            Finish::Deferred { .. } => WorkerStats::add(&stats.deferred, 1),
        }
    }
}

/// Renews the worker's lease and those of every held job each `every` (the worker's own lease
/// also while it holds nothing: decision 0028).
pub(crate) async fn heartbeat_loop(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut ids: Vec<Uuid> = shared.held().iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        match queue::heartbeat(&shared.pool, &shared.cfg.id, &ids, shared.cfg.lease).await {
            Ok(kept) => {
                WorkerStats::add(&shared.stats.heartbeats, 1);
                if kept.len() < ids.len() {
                    let kept: HashSet<Uuid> = kept.into_iter().collect();
                    let held = shared.held();
                    // Jobs written back meanwhile are no longer held: not lost.
                    let lost =
                        held.iter().filter(|(id, _)| ids.binary_search(id).is_ok() && !kept.contains(id)).count();
                    drop(held);
                    if lost > 0 {
                        WorkerStats::add(&shared.stats.leases_lost, lost as u64);
                        tracing::warn!(worker = %shared.cfg.id, lost, "leases lost (reaped after a stall); those results will be ignored");
                    }
                }
            }
            Err(e) => tracing::warn!(worker = %shared.cfg.id, error = %e, "heartbeat failed"),
        }
    }
}

/// Puts jobs with lapsed leases back in the queue each `every` (the first time at once).
pub(crate) async fn reap_loop(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match queue::reap_expired(&shared.pool).await {
            Ok(0) => {}
            Ok(n) => {
                WorkerStats::add(&shared.stats.reaped, n);
                tracing::info!(worker = %shared.cfg.id, jobs = n, "reaped jobs whose lease lapsed");
                shared.wakes.now();
            }
            Err(e) => tracing::warn!(worker = %shared.cfg.id, error = %e, "reaping lapsed leases failed"),
        }
    }
}

/// The worker's own connections, apart from the handlers' pool: they skip the pool's liveness
/// ping before every use (a failed statement is retried anyway), so each claim or result write
/// is one round trip.
/// - `claim`: one connection per claim in flight, with `synchronous_commit = off` (decision
///   0015). A claim lost in a database crash loses nothing (the jobs are simply still queued), and any later durable commit (a handler's
///   write, a result) flushes the claim's WAL first; so a claim does not wait for its own flush.
///   Its prepared claim is planned once (`plan_cache_mode = force_generic_plan`): the fair claim
///   (decision 0025) costs more to plan than to run.
/// - `queue`: results, heartbeats and reaping, fully durable.
pub(crate) fn worker_pools(pool: &PgPool, flushers: u32) -> (PgPool, PgPool) {
    let opts = (*pool.connect_options()).clone();
    let claim = PgPoolOptions::new()
        .max_connections(super::claims::CLAIMS_IN_FLIGHT as u32)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .tcp_nodelay(&opts)
        .connect_lazy_with(
            opts.clone().options([("synchronous_commit", "off"), ("plan_cache_mode", "force_generic_plan")]),
        );
    let queue = PgPoolOptions::new()
        .max_connections(flushers + 2)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .tcp_nodelay(&opts)
        .connect_lazy_with(opts);
    (claim, queue)
}

/// A one-connection pool for the LISTEN connection, so it takes no slot of the worker's pool.
pub(crate) fn listener_pool(pool: &PgPool) -> PgPool {
    let opts = (*pool.connect_options()).clone();
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .tcp_nodelay(&opts)
        .connect_lazy_with(opts)
}

pub(crate) async fn connect_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(queue::CHANNEL).await?;
    Ok(l)
}

/// Wakes the main loop on every notification, with its payload (`wake.rs`); reconnects (and
/// wakes it to claim, since notifications may have been missed) when the connection drops.
pub(crate) async fn listen_loop(shared: Arc<Shared>, pool: PgPool, mut listener: Option<PgListener>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(l) = listener.as_mut() else {
            match connect_listener(&pool).await {
                Ok(l) => {
                    tracing::info!(worker = %shared.cfg.id, "listening for new jobs again");
                    listener = Some(l);
                    backoff = Duration::from_millis(100);
                    shared.wakes.now();
                }
                Err(e) => {
                    tracing::warn!(worker = %shared.cfg.id, error = %e, "LISTEN connection failed; polling meanwhile");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            continue;
        };
        match l.try_recv().await {
            Ok(Some(first)) => {
                shared.wakes.notification(first.payload());
                let mut n = 1;
                while let Some(more) = l.next_buffered() {
                    shared.wakes.notification(more.payload());
                    n += 1;
                }
                WorkerStats::add(&shared.stats.notifications, n);
                shared.wakes.wake();
            }
            // The connection dropped and was re-established: notifications may have been missed.
            Ok(None) => shared.wakes.now(),
            Err(e) => {
                tracing::warn!(worker = %shared.cfg.id, error = %e, "LISTEN connection lost");
                listener = None;
                shared.wakes.now();
                tokio::time::sleep(backoff).await;
            }
        }
    }
}
