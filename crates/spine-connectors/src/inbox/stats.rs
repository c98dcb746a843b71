//! Counters the watcher keeps while it runs, readable from another task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
struct Counters {
    registered: AtomicU64,
    duplicates: AtomicU64,
    failed: AtomicU64,
    ignored: AtomicU64,
    rescans: AtomicU64,
    pending: AtomicU64,
    in_flight: AtomicU64,
}

/// A shared handle on a watcher's counters (clone it before `run` consumes the watcher).
#[derive(Clone, Debug, Default)]
pub struct InboxStats(Arc<Counters>);

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Files registered as a new file or version.
    pub registered: u64,
    /// Files whose bytes were already registered (a duplicate capture).
    pub duplicates: u64,
    /// Files not registered (moved to `failed/`, or left in a read-only folder).
    pub failed: u64,
    /// Distinct ignored names seen.
    pub ignored: u64,
    /// Full rescans finished (the one at start included), over all folders.
    pub rescans: u64,
    /// Files seen and waiting to settle or to be taken.
    pub pending: u64,
    /// Files being taken now.
    pub in_flight: u64,
}

impl InboxStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            registered: get(&c.registered),
            duplicates: get(&c.duplicates),
            failed: get(&c.failed),
            ignored: get(&c.ignored),
            rescans: get(&c.rescans),
            pending: get(&c.pending),
            in_flight: get(&c.in_flight),
        }
    }

    pub(crate) fn registered(&self, duplicate: bool) {
        let c = if duplicate { &self.0.duplicates } else { &self.0.registered };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.0.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ignored(&self) {
        self.0.ignored.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rescanned(&self) {
        self.0.rescans.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_queue(&self, pending: usize, in_flight: usize) {
        self.0.pending.store(pending as u64, Ordering::Relaxed);
        self.0.in_flight.store(in_flight as u64, Ordering::Relaxed);
    }
}
