//! The group committer (decision 0027): one task takes every commit request waiting, flushes
//! the staged bytes of all of them at once, and registers them in one transaction per tenant.
//! While [`MAX_GROUPS_IN_FLIGHT`] groups commit, new requests queue, and become the next group:
//! the more arrive at once, the more share one flush and one WAL flush, and a lone item waits
//! for nobody. A one-tenant group writes its rows while its bytes are flushed and commits once
//! they are durable (decision 0033).
//!
//! An item fails alone: when a group's transaction fails, every item of that tenant is tried
//! again in a transaction of its own, and only then are the blobs of the items that still fail
//! removed (if nothing else references them), so an item sharing bytes with a failed one is not
//! hurt by its cleanup.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use spine_core::ids::TenantId;
use spine_store::Store;
use spine_store::blob::{BlobStore, flush_staged};
use spine_store::repos::registration::{Arrival, Registered, StoredItem};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::{Pending, RegisterError, Staged, discard, finish, prepare, try_register};

/// Items in one group at most (a bound on one transaction's size and on the reply delay).
const MAX_GROUP_ITEMS: usize = 512;
/// Groups committing at once (each holds a database connection); requests arriving meanwhile
/// wait for a free slot and form the next, larger group. One, since session 7: with two, 4,096
/// uploads of 64 KiB four at a time formed groups of 1.3 items and cost 4.0-4.5 ms of CPU each;
/// with one, 3.3-3.6 ms and 10% less time; the inbox benchmark was unchanged (bench/README.md).
const MAX_GROUPS_IN_FLIGHT: usize = 1;

type Reply = Vec<Result<Registered, RegisterError>>;

/// One caller's request: items of one arrival.
struct Job {
    tenant: TenantId,
    arrival: Arrival,
    items: Vec<Staged>,
    reply: oneshot::Sender<Reply>,
}

/// The handle of a registrar's group commit task, started on first use (in the caller's
/// runtime); the task ends when the registrar and all its clones are gone.
pub(super) struct GroupCommitter {
    store: Store,
    blobs: BlobStore,
    queue: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl GroupCommitter {
    pub(super) fn new(store: Store, blobs: BlobStore) -> Self {
        Self { store, blobs, queue: OnceLock::new() }
    }

    pub(super) async fn commit(&self, tenant: TenantId, arrival: &Arrival, items: Vec<Staged>) -> Reply {
        if items.is_empty() {
            return Vec::new();
        }
        let n = items.len();
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.store.clone(), self.blobs.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let job = Job { tenant, arrival: arrival.clone(), items, reply };
        if queue.send(job).is_err() {
            return (0..n).map(|_| Err(RegisterError::GroupStopped)).collect();
        }
        // Dropped (a panic in the group): the items were dropped with it, and their temp files.
        answer.await.unwrap_or_else(|_| (0..n).map(|_| Err(RegisterError::GroupStopped)).collect())
    }
}

async fn run(store: Store, blobs: BlobStore, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut groups = JoinSet::new();
    loop {
        while groups.len() >= MAX_GROUPS_IN_FLIGHT {
            joined(groups.join_next().await);
        }
        let first = tokio::select! {
            job = queue.recv() => job,
            done = groups.join_next(), if !groups.is_empty() => {
                joined(done);
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut size = first.items.len();
        let mut jobs = vec![first];
        while size < MAX_GROUP_ITEMS {
            match queue.try_recv() {
                Ok(job) => {
                    size += job.items.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // Its own task, so that a panic drops this group's replies but not the committer.
        groups.spawn(commit_group(store.clone(), blobs.clone(), jobs));
    }
    while let Some(done) = groups.join_next().await {
        joined(Some(done));
    }
}

fn joined(done: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(e)) = done {
        tracing::error!(error = %e, "a registration group failed; its items were not registered");
    }
}

/// One job's items after the flush: registrable, or already failed.
struct Flushed {
    tenant: TenantId,
    arrival: Arrival,
    items: Vec<Result<Pending, RegisterError>>,
    reply: oneshot::Sender<Reply>,
}

async fn commit_group(store: Store, blobs: BlobStore, jobs: Vec<Job>) {
    let started = std::time::Instant::now();
    let mut staged = Vec::new();
    let mut shells = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut metas = Vec::with_capacity(job.items.len());
        for s in job.items {
            metas.push(s.item);
            staged.push(s.blob);
        }
        shells.push((job.tenant, job.arrival, metas, job.reply));
    }
    let count = staged.len();
    // One tenant (the usual group): its rows are written while the bytes are flushed, and
    // committed once they are durable, so the flush's wait and the statements' overlap.
    let tenant = shells[0].0;
    let (flushed, early) = if shells.iter().all(|s| s.0 == tenant) {
        let arrivals: Vec<(&Arrival, &[StoredItem])> = shells.iter().map(|(_, a, m, _)| (a, m.as_slice())).collect();
        let (flushed, prepared) = tokio::join!(flush_staged(staged), prepare(&store, tenant, &arrivals));
        (flushed, Some(prepared))
    } else {
        (flush_staged(staged).await, None)
    };
    // Bytes durable and (for one tenant) rows written.
    let ready_ms = started.elapsed().as_millis() as u64;
    // The one-tenant group's attempt, finished once every item's bytes are durable. When a
    // blob failed to flush, the attempt is rolled back at once (freeing its locks) and made
    // again below without the failed items.
    let all_durable = flushed.iter().all(Result::is_ok);
    let mut tried = match early {
        Some(Ok((tx, done))) if all_durable => {
            let mut puts: Vec<(&str, bool)> = Vec::with_capacity(flushed.len());
            for put in flushed.iter().flatten() {
                puts.push((put.sha256.as_str(), put.created));
            }
            Some(finish(tx, &blobs, &puts).await.map(|()| done))
        }
        Some(Ok((tx, _))) => {
            if let Err(e) = tx.rollback().await {
                tracing::debug!(%tenant, error = %e, "rolling back a registration group");
            }
            None
        }
        Some(Err(e)) if all_durable => Some(Err(e)),
        Some(Err(_)) | None => None,
    };

    let mut flushed = flushed.into_iter();
    let mut jobs: Vec<Flushed> = Vec::with_capacity(shells.len());
    for (tenant, arrival, metas, reply) in shells {
        let items = metas
            .into_iter()
            .map(|item| match flushed.next() {
                Some(Ok(put)) => Ok(Pending { item, created: put.created }),
                Some(Err(e)) => Err(RegisterError::Blob(e)),
                None => Err(RegisterError::GroupStopped),
            })
            .collect();
        jobs.push(Flushed { tenant, arrival, items, reply });
    }

    let mut results: Vec<Vec<Option<Result<Registered, RegisterError>>>> =
        jobs.iter().map(|j| j.items.iter().map(|_| None).collect()).collect();
    let mut by_tenant: BTreeMap<TenantId, Vec<usize>> = BTreeMap::new();
    for (j, job) in jobs.iter().enumerate() {
        by_tenant.entry(job.tenant).or_default().push(j);
    }
    let mut refused: Vec<Pending> = Vec::new();
    for members in by_tenant.into_values() {
        // `tried` is only ever of a one-tenant group: the first and only tenant here.
        register_tenant(&store, &blobs, &mut jobs, &members, &mut results, &mut refused, tried.take()).await;
    }
    // Only now: an item that shares bytes with a refused one is registered (or refused) already.
    discard(&store, &blobs, refused).await;

    tracing::debug!(
        items = count,
        jobs = jobs.len(),
        ready_ms,
        total_ms = started.elapsed().as_millis() as u64,
        "registration group committed"
    );
    for (job, res) in jobs.into_iter().zip(results) {
        let reply: Reply = job
            .items
            .into_iter()
            .zip(res)
            .map(|(item, r)| match (item, r) {
                (_, Some(r)) => r,
                (Err(e), None) => Err(e),
                (Ok(_), None) => Err(RegisterError::GroupStopped),
            })
            .collect();
        let _ = job.reply.send(reply);
    }
}

/// Registers the flushed items of one tenant's jobs: all in one transaction, or (when that
/// fails) each alone. Items that fail alone go to `refused`. `tried` is the outcome of a group
/// transaction already made for exactly these items (decision 0033): it is not made again.
async fn register_tenant(
    store: &Store,
    blobs: &BlobStore,
    jobs: &mut [Flushed],
    members: &[usize],
    results: &mut [Vec<Option<Result<Registered, RegisterError>>>],
    refused: &mut Vec<Pending>,
    tried: Option<Result<Vec<Vec<Registered>>, RegisterError>>,
) {
    let tenant = jobs[members[0]].tenant;
    // The registrable items of each member job, with their positions.
    let mut parts: Vec<(usize, Vec<usize>, Vec<StoredItem>)> = Vec::new();
    let mut pendings: Vec<Pending> = Vec::new();
    for &j in members {
        let mut idx = Vec::new();
        let mut stored = Vec::new();
        for (i, slot) in jobs[j].items.iter_mut().enumerate() {
            if let Ok(p) = slot {
                idx.push(i);
                stored.push(p.item.clone());
                pendings.push(Pending { item: p.item.clone(), created: p.created });
            }
        }
        if !idx.is_empty() {
            parts.push((j, idx, stored));
        }
    }
    if parts.is_empty() {
        return;
    }
    let arrivals: Vec<(&Arrival, &[StoredItem])> =
        parts.iter().map(|(j, _, stored)| (&jobs[*j].arrival, stored.as_slice())).collect();
    let group = match tried {
        Some(outcome) => outcome,
        None => try_register(store, blobs, tenant, &arrivals, &pendings).await,
    };
    match group {
        Ok(done) => {
            for ((j, idx, _), regs) in parts.iter().zip(done) {
                for (i, r) in idx.iter().zip(regs) {
                    results[*j][*i] = Some(Ok(r));
                }
            }
        }
        Err(group_error) => {
            tracing::info!(%tenant, items = pendings.len(), error = %group_error,
                "a registration group failed; registering its items one by one");
            for (j, idx, stored) in &parts {
                for (i, item) in idx.iter().zip(stored) {
                    let Ok(p) = &jobs[*j].items[*i] else { continue };
                    let one = [Pending { item: p.item.clone(), created: p.created }];
                    let arrival = &jobs[*j].arrival;
                    let r = try_register(store, blobs, tenant, &[(arrival, std::slice::from_ref(item))], &one).await;
                    results[*j][*i] = Some(match r {
                        Ok(mut done) => Ok(done.remove(0).remove(0)),
                        Err(e) => {
                            let [p] = one;
                            refused.push(p);
                            Err(e)
                        }
                    });
                }
            }
        }
    }
}
