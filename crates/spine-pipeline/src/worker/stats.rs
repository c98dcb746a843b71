//! Counters and timings of one worker, for tests and (later) the /metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spine_core::jobs::ErrorClass;

/// A fixed-bucket histogram (Prometheus-style cumulative buckets can be derived from it).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; Histogram::BOUNDS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A histogram's values at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds in seconds; the last bucket (`counts[BOUNDS.len()]`) is +Inf.
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative).
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_secs: f64,
}

impl Histogram {
    /// Bucket upper bounds in seconds.
    pub const BOUNDS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 300.0];

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = Self::BOUNDS.iter().position(|b| s <= *b).unwrap_or(Self::BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: &Self::BOUNDS,
            counts: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        /// A worker's counters. Outcome counters (succeeded … stale) count results as written
        /// to the database, so a test that sees `succeeded == n` can read the rows.
        #[derive(Debug, Default)]
        pub struct WorkerStats {
            $($(#[$m])* pub $name: AtomicU64,)*
            /// Failed or quarantined results written, per class, in `ErrorClass::ALL` order.
            pub failures_by_class: [AtomicU64; 8],
            /// Claim latency: when the handler started minus when the job was due.
            pub claim_latency: Histogram,
            /// How long handlers ran.
            pub run_duration: Histogram,
        }

        /// [`WorkerStats`]' counters at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $($(#[$m])* pub $name: u64,)*
        }

        impl WorkerStats {
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Claim statements issued.
    claims,
    /// Claims that found nothing (the worker then waits for a notification or the poll timer).
    empty_claims,
    /// Jobs claimed.
    claimed,
    /// Handlers running now (a gauge).
    in_flight,
    succeeded,
    /// Of those, successes a handler recorded in its own transaction (no result written here).
    succeeded_in_handler,
    /// Failed, will retry.
    failed,
    quarantined,
    /// Handed back at shutdown.
    released,
    /// Put off by a rate limit (not counted as an attempt).
    deferred,
    /// Results not applied because the lease had been lost (the job was reaped and claimed again).
    stale,
    /// Handlers that panicked.
    panics,
    /// `finish` calls that committed, and those that failed (and were retried).
    flushes,
    flush_errors,
    /// Heartbeat statements, and held jobs whose lease turned out to be lost.
    heartbeats,
    leases_lost,
    /// Jobs (of any worker) this worker's reaper found with a lapsed lease.
    reaped,
    /// Notifications received on the jobs channel.
    notifications,
    /// Wakes after which the worker waited for more jobs of a lingering kind (decision 0034).
    lingered,
}

impl WorkerStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self, class: ErrorClass) {
        if let Some(i) = ErrorClass::ALL.iter().position(|c| *c == class) {
            self.failures_by_class[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Failed or quarantined results of `class` written so far.
    pub fn failures_of(&self, class: ErrorClass) -> u64 {
        ErrorClass::ALL
            .iter()
            .position(|c| *c == class)
            .map_or(0, |i| self.failures_by_class[i].load(Ordering::Relaxed))
    }
}

impl WorkerStats {
    /// Prometheus text for this worker: outcome counters, failures by class, claim latency and
    /// run duration histograms (cumulative buckets, as the format wants).
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write;
        let s = self.snapshot();
        let mut out = String::new();
        out.push_str("# HELP spine_worker_jobs_total Attempts finished by this process, by outcome.\n");
        out.push_str("# TYPE spine_worker_jobs_total counter\n");
        for (outcome, n) in [
            ("succeeded", s.succeeded),
            ("failed", s.failed),
            ("quarantined", s.quarantined),
            ("released", s.released),
            ("deferred", s.deferred),
            ("stale", s.stale),
        ] {
            let _ = writeln!(out, "spine_worker_jobs_total{{outcome=\"{outcome}\"}} {n}");
        }
        out.push_str(
            "# HELP spine_worker_in_flight Jobs this process holds now.\n# TYPE spine_worker_in_flight gauge\n",
        );
        let _ = writeln!(out, "spine_worker_in_flight {}", s.in_flight);
        out.push_str("# HELP spine_job_failures_total Failed attempts by error class.\n");
        out.push_str("# TYPE spine_job_failures_total counter\n");
        for class in ErrorClass::ALL {
            let _ = writeln!(out, "spine_job_failures_total{{class=\"{class}\"}} {}", self.failures_of(class));
        }
        for (name, help, h) in [
            ("spine_job_claim_latency_seconds", "From a job's due time to its claim.", self.claim_latency.snapshot()),
            ("spine_job_run_duration_seconds", "How long handlers ran.", self.run_duration.snapshot()),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let mut cumulative = 0;
            for (i, bound) in h.bounds.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum_secs, h.count);
        }
        out
    }
}
