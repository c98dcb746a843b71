//! The job queue: a focused `FOR UPDATE SKIP LOCKED` engine on qiserver.jobs.
//!
//! - Enqueue takes the caller's connection, so a job exists if and only if the caller's
//!   transaction commits (run it on a `TenantTx`: RLS checks the tenant).
//! - Claim, heartbeat, finish and reap are cross-tenant worker operations on the pool.
//! - Finishing is guarded by (lease owner, attempt): a worker that lost its lease cannot overwrite
//!   the result of the attempt that replaced it. Delivery is at least once.

mod admin;
mod claim;
mod connections;
mod enqueue;
mod run;
pub mod schedules;

pub use admin::{AttemptRow, JobFilter, JobRow, StatsRow, attempts, cancel, get, list, prune, requeue, retry, stats};
pub use claim::{ClaimedJob, claim, claim_tenant, only_tenant};
pub use connections::blocked_connection;
pub use enqueue::{Enqueued, NewJob, enqueue, enqueue_many};
pub use run::{Finish, Finished, finish, forget_worker, heartbeat, reap_expired};

/// The NOTIFY channel workers LISTEN on.
pub const CHANNEL: &str = "spine_jobs";
