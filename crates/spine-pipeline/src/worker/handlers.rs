//! The handler registry: which function runs a job of each kind, and with which retry policy.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use spine_core::ids::TenantId;
use spine_core::jobs::{ErrorClass, JobError, RetryPolicy};
use spine_store::Store;
use spine_store::queue::{ClaimedJob, Lease, NewJob};
use uuid::Uuid;

/// A boxed, sendable future (what a handler returns).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A job handler. It must be idempotent: delivery is at least once.
pub type HandlerFn = Arc<dyn Fn(JobContext) -> BoxFuture<Result<(), JobError>> + Send + Sync>;

/// A handler of several claimed jobs of one kind and tenant at once (say, in one transaction);
/// it returns one result per job, in order. Idempotent like [`HandlerFn`].
pub type BatchFn = Arc<dyn Fn(Vec<JobContext>) -> BoxFuture<Vec<Result<(), JobError>>> + Send + Sync>;

/// What a handler is told about the job it runs.
#[derive(Clone)]
pub struct JobContext {
    pub id: Uuid,
    pub tenant: TenantId,
    pub kind: String,
    pub payload: Value,
    /// The number of this attempt (1-based).
    pub attempt: i32,
    pub max_attempts: i32,
    pub file_id: Option<Uuid>,
    pub import_batch_id: Option<Uuid>,
    pub parent_job_id: Option<Uuid>,
    /// The connection the job calls, when it names one (the worker checked it is usable).
    pub connection_id: Option<Uuid>,
    /// For the handler's own work: `store.tenant_tx(ctx.tenant)`, and enqueueing child jobs in
    /// that transaction with `spine_store::queue::enqueue(tx.conn(), &ctx.child(..))`.
    pub store: Store,
    /// The worker holding the attempt's lease.
    worker: Arc<str>,
    /// Set by [`JobContext::succeeded_in_transaction`].
    recorded: Arc<AtomicBool>,
}

impl JobContext {
    pub(crate) fn new(job: &ClaimedJob, store: Store, worker: Arc<str>) -> Self {
        Self {
            id: job.id,
            tenant: TenantId::from(job.tenant_id),
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            attempt: job.attempts,
            max_attempts: job.max_attempts,
            file_id: job.file_id,
            import_batch_id: job.import_batch_id,
            parent_job_id: job.parent_job_id,
            connection_id: job.connection_id,
            store,
            worker,
            recorded: Arc::new(AtomicBool::new(false)),
        }
    }

    /// This attempt's lease, for a handler that records its job's success in its own
    /// transaction (`spine_store::succeed_held_job_sql!`), so that its writes and the job's end
    /// commit together. Only for jobs without a parent or a connection.
    pub fn lease(&self) -> Lease {
        Lease { job_id: self.id, worker: self.worker.to_string(), attempt: self.attempt }
    }

    /// Tells the worker that the handler's committed transaction recorded this job's success:
    /// when the handler then returns `Ok`, the worker writes no result of its own. Call it only
    /// after the commit, and only when the update applied (when the lease was gone, return `Ok`
    /// without it: the worker's own write finds the attempt stale and counts it so).
    pub fn succeeded_in_transaction(&self) {
        self.recorded.store(true, Ordering::Release);
    }

    /// A handle on the flag, for the worker to read once the handler returned.
    pub(crate) fn recorded(&self) -> Arc<AtomicBool> {
        self.recorded.clone()
    }

    /// A child job of this one (same tenant, `parent_job_id` set), to enqueue for fan-out.
    pub fn child(&self, kind: impl Into<String>, payload: Value) -> NewJob {
        let mut job = NewJob::new(self.tenant, kind, payload);
        job.parent_job_id = Some(self.id);
        job
    }

    /// Decodes the payload; a payload that does not decode is an `invalid` error (no retry).
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            JobError::new(ErrorClass::Invalid, format!("payload of {} job {} does not decode: {e}", self.kind, self.id))
        })
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) run: HandlerFn,
    pub(crate) policy: RetryPolicy,
    /// Set for kinds registered with [`Handlers::register_batch`]: the handler and the most
    /// jobs it takes at once.
    pub(crate) batch: Option<(BatchFn, usize)>,
    /// Set by [`Handlers::linger`].
    pub(crate) linger: Option<Duration>,
}

/// Kind → handler and retry policy.
#[derive(Clone, Default)]
pub struct Handlers {
    map: HashMap<String, Entry>,
}

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `f` for jobs of `kind` (replacing an earlier registration of the same kind).
    ///
    /// ```
    /// use spine_core::jobs::RetryPolicy;
    /// use spine_pipeline::worker::Handlers;
    ///
    /// let handlers = Handlers::new().register("demo", RetryPolicy::default(), |ctx| async move {
    ///     let _n = ctx.payload["n"].as_i64();
    ///     Ok(())
    /// });
    /// assert_eq!(handlers.kinds(), ["demo"]);
    /// ```
    pub fn register<F, Fut>(self, kind: impl Into<String>, policy: RetryPolicy, f: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let run: HandlerFn = Arc::new(move |ctx| Box::pin(f(ctx)));
        self.register_boxed(kind, policy, run)
    }

    /// Registers an already boxed handler.
    pub fn register_boxed(mut self, kind: impl Into<String>, policy: RetryPolicy, run: HandlerFn) -> Self {
        self.map.insert(kind.into(), Entry { run, policy, batch: None, linger: None });
        self
    }

    /// Registers `f` for jobs of `kind`, to be handed up to `max` claimed jobs of that kind and
    /// of one tenant at once (those the worker holds when one of them starts; often just one).
    /// Jobs that call a connection are handed over one at a time. Results are per job.
    pub fn register_batch<F, Fut>(mut self, kind: impl Into<String>, policy: RetryPolicy, max: usize, f: F) -> Self
    where
        F: Fn(Vec<JobContext>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<(), JobError>>> + Send + 'static,
    {
        let batch: BatchFn = Arc::new(move |ctxs| Box::pin(f(ctxs)));
        let one = batch.clone();
        let run: HandlerFn = Arc::new(move |ctx| {
            let fut = one(vec![ctx]);
            Box::pin(async move {
                fut.await
                    .pop()
                    .unwrap_or_else(|| Err(JobError::new(ErrorClass::Internal, "the batch handler returned no result")))
            })
        });
        self.map.insert(kind.into(), Entry { run, policy, batch: Some((batch, max.max(1))), linger: None });
        self
    }

    /// Lets jobs of the registered `kind` wait up to `window` to be claimed while they keep
    /// coming, so that one claim (and one call of a batch handler) takes several: for kinds
    /// whose handling costs less per job in batches, where a few milliseconds more do not matter.
    /// The first job after a quiet spell is claimed at once; see decision 0034. Does nothing for
    /// a kind not registered.
    pub fn linger(mut self, kind: &str, window: Duration) -> Self {
        if let Some(e) = self.map.get_mut(kind) {
            e.linger = Some(window).filter(|w| !w.is_zero());
        }
        self
    }

    /// Kind → linger window, for the kinds that have one.
    pub(crate) fn linger_windows(&self) -> HashMap<String, Duration> {
        self.map.iter().filter_map(|(k, e)| e.linger.map(|w| (k.clone(), w))).collect()
    }

    /// The registered kinds, sorted (e.g. to pass as a worker's `kinds`).
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.map.keys().cloned().collect();
        k.sort();
        k
    }

    pub fn contains(&self, kind: &str) -> bool {
        self.map.contains_key(kind)
    }

    /// The retry policy of `kind`, when registered.
    pub fn policy(&self, kind: &str) -> Option<&RetryPolicy> {
        self.map.get(kind).map(|e| &e.policy)
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Entry> {
        self.map.get(kind)
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers").field("kinds", &self.kinds()).finish()
    }
}
