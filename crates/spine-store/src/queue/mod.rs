//! The job queue: a focused `FOR UPDATE SKIP LOCKED` engine on qiserver.jobs.
//!
//! - Enqueue takes the caller's connection, so a job exists if and only if the caller's
//!   transaction commits (run it on a `TenantTx`: RLS checks the tenant).
//! - Claim, heartbeat, finish and reap are cross-tenant worker operations on the pool.
//! - Finishing is guarded by (lease owner, attempt): a worker that lost its lease cannot overwrite
//!   the result of the attempt that replaced it. Delivery is at least once.

/// Renews a worker's own lease (decision 0028) to the later of its lease and the one `$rows`
/// gives (a `VALUES` or `SELECT` of worker id and lease end); registers the worker if it is not.
/// One definition for the claim and the heartbeat.
macro_rules! renew_worker {
    ($rows:literal) => {
        concat!(
            "INSERT INTO qiserver.job_workers AS w (worker_id, lease_expires_at) ",
            $rows,
            " ON CONFLICT (worker_id) DO UPDATE
             SET lease_expires_at = greatest(w.lease_expires_at, excluded.lease_expires_at), updated_at = now()"
        )
    };
}

mod admin;
mod claim;
mod connections;
mod enqueue;
mod finish;
mod run;
pub mod schedules;

pub use admin::{AttemptRow, JobFilter, JobRow, StatsRow, attempts, cancel, get, list, prune, requeue, retry, stats};
pub use claim::{ClaimedJob, claim, claim_tenant, only_tenant};
pub use connections::blocked_connection;
pub use enqueue::{Enqueued, NewJob, enqueue, enqueue_many};
pub use finish::{Finish, Finished, Lease, finish};
pub use run::{forget_worker, heartbeat, reap_expired};

/// The NOTIFY channel workers LISTEN on.
pub const CHANNEL: &str = "spine_jobs";
