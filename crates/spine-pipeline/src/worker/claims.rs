//! The worker's claim in flight and what the last one found.
//!
//! Two claims in flight at once ([`CLAIMS_IN_FLIGHT`]), each for what fits beside the jobs held
//! and the other claim's: since finishes became HOT updates (decision 0028) a claim costs more
//! than the results it makes, and one claim at a time left a fifth of two cores idle. (With the
//! heavier writes before, a second claim made everything slower: decision 0015.) A claim that
//! comes back short means the queue is drained: wait for a notification or the poll timer.
//!
//! Claims are fair across tenants (decision 0025). While the database has a single tenant the
//! worker claims that tenant's jobs directly (`queue::claim_tenant`, one index scan instead of
//! two, the same jobs); it asks again whether that still holds every second and whenever a
//! claim comes back empty, so a new tenant's jobs wait at most a second behind a busy one.

use std::future::Future as _;
use std::time::{Duration, Instant};

use spine_store::StoreError;
use spine_store::queue::{self, ClaimedJob};
use sqlx::PgPool;
use tokio::task::{JoinError, JoinHandle};
use uuid::Uuid;

use super::config::WorkerConfig;

type ClaimResult = Result<Vec<ClaimedJob>, StoreError>;

/// Claims in flight at once (the claim pool has as many connections). Measured on two cores
/// (bench/README.md, session 5): 2 gave 11-25% more jobs/s than 1 for 10% more Postgres CPU per
/// job; 3 no more than 2.
pub(super) const CLAIMS_IN_FLIGHT: usize = 2;

/// How long "the database has one tenant" is trusted before it is asked again.
const TENANTS_RECHECK: Duration = Duration::from_secs(1);

/// What the claim task hands back: its jobs, and the single tenant if it looked that up.
type Claimed = (ClaimResult, Option<(Instant, Option<Uuid>)>);

#[derive(Default)]
pub(super) struct Claims {
    /// The claims in flight, with how many jobs each asked for.
    running: Vec<(JoinHandle<Claimed>, usize)>,
    /// The last claim came back short (or failed).
    pub(super) drained: bool,
    /// When it was last checked, and the database's only tenant then (None: several, or none).
    solo: Option<(Instant, Option<Uuid>)>,
}

impl Claims {
    pub(super) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Starts a claim if one is due, given the jobs held; returns whether it did.
    pub(super) fn start(&mut self, pool: &PgPool, cfg: &WorkerConfig, held: usize) -> bool {
        if self.drained || self.running.len() >= CLAIMS_IN_FLIGHT {
            return false;
        }
        let asked: usize = self.running.iter().map(|(_, n)| n).sum();
        let room = cfg.max_held().saturating_sub(held + asked);
        if room < cfg.claim_step() {
            return false;
        }
        let limit = room.min(cfg.claim_batch.max(1));
        let (pool, id, kinds, lease) = (pool.clone(), cfg.id.clone(), cfg.kinds.clone(), cfg.lease);
        let solo = self.solo.filter(|(at, _)| at.elapsed() < TENANTS_RECHECK).map(|(_, t)| t);
        let task = tokio::spawn(async move { run(pool, id, kinds, limit as i64, lease, solo).await });
        self.running.push((task, limit));
        true
    }

    /// The first claim in flight to finish, with its position (pending while there is none).
    pub(super) async fn next(&mut self) -> (usize, Result<Claimed, JoinError>) {
        std::future::poll_fn(|cx| {
            for (i, (task, _)) in self.running.iter_mut().enumerate() {
                if let std::task::Poll::Ready(r) = std::pin::Pin::new(task).poll(cx) {
                    return std::task::Poll::Ready((i, r));
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Books the finished claim; returns its jobs (empty after an error, which is logged).
    pub(super) fn done(&mut self, (i, res): (usize, Result<Claimed, JoinError>), worker: &str) -> Vec<ClaimedJob> {
        let (_, limit) = self.running.swap_remove(i);
        let res = res.map(|(jobs, solo)| {
            if solo.is_some() {
                self.solo = solo;
            }
            jobs
        });
        match res {
            Ok(Ok(jobs)) => {
                self.drained = jobs.len() < limit;
                if jobs.is_empty() {
                    // An empty claim may mean the notification was another tenant's: ask again
                    // next time. (A short one found the tenant's own jobs; asking after each
                    // cost a round trip per job when jobs trickle in one at a time.)
                    self.solo = None;
                }
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

/// `solo`: the cached answer to "which is the only tenant?", or None to look it up first.
async fn run(
    pool: PgPool,
    worker: String,
    kinds: Option<Vec<String>>,
    limit: i64,
    lease: Duration,
    solo: Option<Option<Uuid>>,
) -> Claimed {
    let (tenant, fresh) = match solo {
        Some(t) => (t, None),
        None => match queue::only_tenant(&pool).await {
            Ok(t) => (t, Some((Instant::now(), t))),
            Err(e) => return (Err(e), None),
        },
    };
    let jobs = match tenant {
        Some(t) => queue::claim_tenant(&pool, &worker, t, kinds.as_deref(), limit, lease).await,
        None => queue::claim(&pool, &worker, kinds.as_deref(), limit, lease).await,
    };
    (jobs, fresh)
}
