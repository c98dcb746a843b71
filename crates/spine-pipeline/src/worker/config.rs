//! Worker settings.

use std::time::Duration;

/// How a worker runs. Build with [`WorkerConfig::new`] and adjust the public fields (or use
/// [`WorkerConfig::with_lease`], which keeps the heartbeat and reaper intervals in proportion).
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Written as the lease owner and on every attempt row. Must be unique among the workers
    /// running at the same time (see [`WorkerConfig::unique_id`]).
    pub id: String,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Only claim jobs of these kinds (`None`: every kind; a kind without a handler is quarantined).
    pub kinds: Option<Vec<String>>,
    /// How long a claim holds a job without a heartbeat. Default 30 s.
    pub lease: Duration,
    /// How often the leases of held jobs are extended. Default lease/3; `None` turns heartbeats
    /// off (tests of lease expiry only).
    pub heartbeat_every: Option<Duration>,
    /// How often lapsed leases (of dead or hung workers) are reaped. Default lease/2.
    pub reap_every: Duration,
    /// Fallback poll when no notification arrives. Default 1 s.
    pub poll_every: Duration,
    /// The most jobs one claim takes; the worker holds at most max(claim_batch, concurrency) jobs
    /// (running plus claimed and waiting for a slot). Default 2 × concurrency, at most
    /// concurrency + 100. Set it to `concurrency` for long-running kinds, so that no claimed job
    /// waits behind a slow one while another worker is idle.
    pub claim_batch: usize,
    /// On shutdown, how long in-flight handlers may take before they are aborted and released.
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    pub fn new(id: impl Into<String>, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        let lease = Duration::from_secs(30);
        Self {
            id: id.into(),
            concurrency,
            kinds: None,
            lease,
            heartbeat_every: Some(lease / 3),
            reap_every: lease / 2,
            poll_every: Duration::from_secs(1),
            claim_batch: (2 * concurrency).min(concurrency + 100),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Sets the lease, with heartbeats (unless turned off) every lease/3 and reaping every lease/2.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        if self.heartbeat_every.is_some() {
            self.heartbeat_every = Some(lease / 3);
        }
        self.reap_every = lease / 2;
        self
    }

    /// `prefix-<pid>-<4 hex>`: unique enough among the workers of one database.
    pub fn unique_id(prefix: &str) -> String {
        format!("{prefix}-{}-{:04x}", std::process::id(), rand::random::<u16>())
    }

    /// The most jobs held at once.
    pub(crate) fn max_held(&self) -> usize {
        self.claim_batch.max(self.concurrency).max(1)
    }

    /// A claim is issued once at least this many jobs fit (so claims are not one job at a time).
    pub(crate) fn claim_step(&self) -> usize {
        (self.max_held() / 4).max(1)
    }
}
