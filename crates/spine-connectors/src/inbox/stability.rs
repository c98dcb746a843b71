//! When a file may be taken. A file is stable when its size and mtime have not changed for the
//! settle interval: seen unchanged that long, or (for files found by a scan) an mtime at least
//! that old. A file moved in by a rename is taken at once; the take step compares a fresh stat
//! with the one here, so "stable across two stats" holds for it too.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::scan::Seen;

#[derive(Clone, Debug)]
struct Tracked {
    seen: Seen,
    /// When `seen` was first observed (reset whenever it changes).
    since: Instant,
    moved_in: bool,
    /// First-seen order, so files are taken roughly in arrival order.
    seq: u64,
    in_flight: bool,
    /// In the ready queue.
    queued: bool,
    retry_at: Option<Instant>,
    attempts: u32,
}

/// A file handed to the take step.
#[derive(Clone, Debug)]
pub(crate) struct Ready {
    pub rel: PathBuf,
    pub seen: Seen,
    /// Earlier attempts that ended in a transient error.
    pub attempts: u32,
}

/// The files of one folder that are waiting to be taken.
#[derive(Debug)]
pub(crate) struct Tracker {
    settle: Duration,
    files: HashMap<PathBuf, Tracked>,
    /// Stable files in first-seen order, waiting for room (entries that changed, went or were
    /// taken since are skipped): thousands of ready files cost one scan, not one per take.
    queue: VecDeque<PathBuf>,
    next_seq: u64,
}

impl Tracker {
    pub fn new(settle: Duration) -> Self {
        Self { settle, files: HashMap::new(), queue: VecDeque::new(), next_seq: 0 }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_in_flight(&self, rel: &Path) -> bool {
        self.files.get(rel).is_some_and(|t| t.in_flight)
    }

    /// Records a stat of `rel`. A change restarts the settle interval and clears `moved_in`
    /// unless this observation is itself a move. Files being taken are left alone.
    pub fn observe(&mut self, rel: PathBuf, seen: Seen, now: Instant, moved_in: bool) {
        match self.files.get_mut(&rel) {
            Some(t) if t.in_flight => {}
            Some(t) => {
                if t.seen != seen {
                    t.seen = seen;
                    t.since = now;
                    t.moved_in = moved_in;
                    t.queued = false;
                } else {
                    t.moved_in |= moved_in;
                }
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let t = Tracked {
                    seen,
                    since: now,
                    moved_in,
                    seq,
                    in_flight: false,
                    queued: false,
                    retry_at: None,
                    attempts: 0,
                };
                self.files.insert(rel, t);
            }
        }
    }

    /// Stops tracking `rel` (gone, ignored, or taken) unless it is being taken.
    pub fn forget(&mut self, rel: &Path) {
        if !self.is_in_flight(rel) {
            self.files.remove(rel);
        }
    }

    /// Stops tracking everything below the folder `rel` (it went away) that is not being taken.
    pub fn forget_below(&mut self, rel: &Path) {
        self.files.retain(|p, t| t.in_flight || !p.starts_with(rel));
    }

    /// Keeps only the files `keep` says are still there (after a full rescan).
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.files.retain(|p, t| t.in_flight || keep(p));
    }

    /// Up to `limit` stable files, oldest first, marked in flight.
    pub fn take_ready(&mut self, now: Instant, wall_ns: i64, limit: usize) -> Vec<Ready> {
        let mut out = Vec::with_capacity(limit);
        let mut refilled = false;
        while out.len() < limit {
            let Some(rel) = self.queue.pop_front() else {
                if refilled {
                    break;
                }
                refilled = true;
                self.refill(now, wall_ns);
                continue;
            };
            if let Some(t) = self.files.get_mut(&rel).filter(|t| t.queued && !t.in_flight) {
                t.queued = false;
                t.in_flight = true;
                out.push(Ready { seen: t.seen, attempts: t.attempts, rel });
            }
        }
        out
    }

    /// Queues the stable files not queued yet, in first-seen order.
    fn refill(&mut self, now: Instant, wall_ns: i64) {
        let settle = self.settle;
        let settle_ns = i64::try_from(settle.as_nanos()).unwrap_or(i64::MAX);
        let mut fresh: Vec<(u64, &PathBuf)> = self
            .files
            .iter()
            .filter(|(_, t)| !t.in_flight && !t.queued && t.retry_at.is_none_or(|at| at <= now))
            .filter(|(_, t)| {
                t.moved_in
                    || t.seen.special.is_some()
                    || now.duration_since(t.since) >= settle
                    || wall_ns.saturating_sub(t.seen.mtime_ns) >= settle_ns
            })
            .map(|(p, t)| (t.seq, p))
            .collect();
        fresh.sort_unstable();
        let fresh: Vec<PathBuf> = fresh.into_iter().map(|(_, p)| p.clone()).collect();
        for p in fresh {
            if let Some(t) = self.files.get_mut(&p) {
                t.queued = true;
                self.queue.push_back(p);
            }
        }
    }

    /// The take step found the file changed (or could not finish): watch it again from `now`.
    pub fn unsettled(&mut self, rel: &Path, now: Instant) {
        if let Some(t) = self.files.get_mut(rel) {
            t.in_flight = false;
            t.moved_in = false;
            t.since = now;
        }
    }

    /// The take step hit a transient error: try again after `delay`.
    pub fn retry_later(&mut self, rel: &Path, now: Instant, delay: Duration) {
        if let Some(t) = self.files.get_mut(rel) {
            t.in_flight = false;
            t.attempts += 1;
            t.retry_at = Some(now + delay);
        }
    }

    /// The take step is over with the file (taken, failed, or gone).
    pub fn done(&mut self, rel: &Path) {
        self.files.remove(rel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(size: u64, mtime_ns: i64) -> Seen {
        Seen { size, mtime_ns, ino: 1, special: None }
    }

    #[test]
    fn settles_after_the_interval_or_by_mtime_age() {
        let t0 = Instant::now();
        let settle = Duration::from_millis(500);
        let mut tr = Tracker::new(settle);
        let wall = 10_000_000_000; // 10 s after the epoch
        tr.observe("fresh".into(), seen(1, wall), t0, false);
        tr.observe("old".into(), seen(1, wall - 600_000_000), t0, false);
        tr.observe("moved".into(), seen(1, wall), t0, true);
        let names = |v: Vec<Ready>| v.into_iter().map(|r| r.rel.display().to_string()).collect::<Vec<_>>();
        assert_eq!(names(tr.take_ready(t0, wall, 10)), ["old", "moved"]);
        // A change restarts the interval.
        tr.observe("fresh".into(), seen(2, wall + 400_000_000), t0 + Duration::from_millis(400), false);
        assert!(tr.take_ready(t0 + Duration::from_millis(600), wall + 600_000_000, 10).is_empty());
        let later = t0 + Duration::from_millis(901);
        assert_eq!(names(tr.take_ready(later, wall + 800_000_000, 10)), ["fresh"]);
        assert!(tr.take_ready(later, wall + 900_000_000, 10).is_empty(), "in flight once");
    }

    #[test]
    fn retries_wait_and_in_flight_files_are_kept() {
        let t0 = Instant::now();
        let mut tr = Tracker::new(Duration::from_millis(10));
        tr.observe("a".into(), seen(1, 0), t0, false);
        let r = tr.take_ready(t0, 1_000_000_000, 1);
        assert_eq!(r.len(), 1);
        tr.forget(Path::new("a"));
        tr.retain(|_| false);
        assert!(tr.is_in_flight(Path::new("a")));
        tr.retry_later(Path::new("a"), t0, Duration::from_secs(5));
        assert!(tr.take_ready(t0 + Duration::from_secs(1), 1_000_000_000, 1).is_empty());
        let r = tr.take_ready(t0 + Duration::from_secs(5), 1_000_000_000, 1);
        assert_eq!(r[0].attempts, 1);
        tr.done(Path::new("a"));
        assert_eq!(tr.len(), 0);
    }

    #[test]
    fn many_ready_files_go_in_arrival_order_skipping_changed_ones() {
        let t0 = Instant::now();
        let mut tr = Tracker::new(Duration::from_millis(10));
        for i in 0..10 {
            tr.observe(format!("f{i}").into(), seen(i, 0), t0, false);
        }
        let wall = 1_000_000_000;
        let names = |v: Vec<Ready>| v.into_iter().map(|r| r.rel.display().to_string()).collect::<Vec<_>>();
        assert_eq!(names(tr.take_ready(t0, wall, 3)), ["f0", "f1", "f2"]);
        // f3 changes while queued: it settles again and goes last.
        tr.observe("f3".into(), seen(99, wall), t0, false);
        tr.forget(Path::new("f4"));
        assert_eq!(names(tr.take_ready(t0, wall, 3)), ["f5", "f6", "f7"]);
        assert_eq!(names(tr.take_ready(t0 + Duration::from_millis(20), wall, 4)), ["f8", "f9", "f3"]);
    }
}
