//! What woke an idle worker, and whether it claims at once or lingers (decision 0034).
//!
//! A kind registered with a linger window ([`super::Handlers::linger`]) gains more from being
//! claimed and handled several jobs at once than from being picked up at once: file processing
//! ends a whole batch of files in one statement. Each enqueue notifies with the kind of the jobs
//! it inserted, when they share one. An idle worker woken only by notifications of lingering
//! kinds while jobs keep coming (its last claim that found jobs ended less than a window ago)
//! claims one window after that claim instead of at once, so that one claim and one handler call
//! take the jobs of a whole window. Anything else claims at once: a notification of another
//! kind or of a mixed enqueue, a reaped lease, a reconnected listener, the poll timer, and the
//! first job after a quiet spell (idle pickup is never delayed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Wakes for the main loop, with what caused them. Whoever wakes it records why first.
pub(crate) struct Wakes {
    /// Something other than a lingering kind's notification arrived.
    urgent: AtomicBool,
    /// The shortest window of the lingering kinds notified since the loop last looked, in
    /// microseconds (`u64::MAX`: none).
    linger_us: AtomicU64,
    /// Kind → linger window.
    windows: HashMap<String, Duration>,
    notify: Notify,
}

/// What the wakes since the loop last looked asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Claim at once.
    Now,
    /// Only jobs of lingering kinds, the shortest window this long.
    Linger(Duration),
    /// Nothing new: an earlier wake already reported it.
    Stale,
}

impl Wakes {
    pub(crate) fn new(windows: HashMap<String, Duration>) -> Self {
        Self { urgent: AtomicBool::new(false), linger_us: AtomicU64::new(u64::MAX), windows, notify: Notify::new() }
    }

    /// Records a notification on the jobs channel (`payload`: the jobs' kind, or empty); call
    /// [`Wakes::wake`] after a run of them.
    pub(crate) fn notification(&self, payload: &str) {
        match self.windows.get(payload) {
            Some(w) => {
                self.linger_us.fetch_min(u64::try_from(w.as_micros()).unwrap_or(u64::MAX - 1), Ordering::SeqCst);
            }
            None => self.urgent.store(true, Ordering::SeqCst),
        }
    }

    /// Wakes the loop for what was recorded.
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Wakes the loop to claim at once (something other than a notification may be due).
    pub(crate) fn now(&self) {
        self.urgent.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Resolves when the loop was woken (at once when a wake came since it last waited).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// What the wakes since the last call asked for.
    pub(crate) fn take(&self) -> Wake {
        let linger = self.linger_us.swap(u64::MAX, Ordering::SeqCst);
        if self.urgent.swap(false, Ordering::SeqCst) {
            return Wake::Now;
        }
        match linger {
            u64::MAX => Wake::Stale,
            us => Wake::Linger(Duration::from_micros(us)),
        }
    }
}

/// The loop's side: when its last claim that found jobs ended.
#[derive(Debug, Default)]
pub(crate) struct Linger {
    last_found: Option<Instant>,
}

impl Linger {
    /// A claim that found jobs ended at `now`.
    pub(crate) fn found_jobs(&mut self, now: Instant) {
        self.last_found = Some(now);
    }

    /// When an idle loop woken at `now` should claim: `now` (at once), a later instant (it
    /// lingers until then), or `None` (nothing new; keep waiting as before).
    pub(crate) fn claim_at(&self, wake: Wake, now: Instant) -> Option<Instant> {
        let window = match wake {
            Wake::Now => return Some(now),
            Wake::Stale => return None,
            Wake::Linger(w) => w,
        };
        match self.last_found {
            Some(found) if now < found + window => Some(found + window),
            _ => Some(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wakes() -> Wakes {
        Wakes::new(HashMap::from([("slow.batch".to_owned(), Duration::from_millis(20))]))
    }

    #[test]
    fn notifications_of_other_kinds_or_of_mixed_enqueues_claim_at_once() {
        let w = wakes();
        w.notification("slow.batch");
        w.notification("");
        assert_eq!(w.take(), Wake::Now);
        assert_eq!(w.take(), Wake::Stale, "what was taken is not reported twice");
        w.notification("other.kind");
        assert_eq!(w.take(), Wake::Now);
        w.notification("slow.batch");
        assert_eq!(w.take(), Wake::Linger(Duration::from_millis(20)));
    }

    #[test]
    fn a_lingering_kind_waits_only_while_its_jobs_keep_coming() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = Linger::default();
        assert_eq!(l.claim_at(Wake::Linger(ms(20)), t0), Some(t0), "the first job after a quiet spell: at once");
        l.found_jobs(t0);
        assert_eq!(
            l.claim_at(Wake::Linger(ms(20)), t0 + ms(5)),
            Some(t0 + ms(20)),
            "during a burst, one window after the last claim that found jobs"
        );
        assert_eq!(l.claim_at(Wake::Stale, t0 + ms(6)), None);
        assert_eq!(l.claim_at(Wake::Now, t0 + ms(7)), Some(t0 + ms(7)), "another kind's job: at once");
        assert_eq!(l.claim_at(Wake::Linger(ms(20)), t0 + ms(25)), Some(t0 + ms(25)), "a window after it: at once");
    }
}
