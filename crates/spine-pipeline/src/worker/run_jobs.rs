//! Starting handlers and taking their results: one job per task, or the held jobs of one kind
//! and tenant together for a batch handler ([`super::Handlers::register_batch`]).

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use spine_core::jobs::{AfterFailure, ErrorClass, JobError, RetryPolicy};
use spine_store::queue::Finish;
use sqlx::PgPool;
use tokio::task::JoinError;

use super::handlers::HandlerFn;
use super::{Held, JobContext, Loop, Outcome, Running, WorkerStats, db_time};

impl Loop<'_> {
    pub(super) fn start(&mut self, held: Held) {
        let handlers = self.w.handlers.clone();
        let Some(entry) = handlers.get(&held.job.kind) else {
            let err = JobError::new(ErrorClass::Invalid, format!("no handler for kind {}", held.job.kind));
            let outcome = Finish::Quarantined { class: err.class, message: err.message };
            self.send(&held, Instant::now(), Instant::now(), outcome);
            return;
        };
        let mut group = vec![held];
        if let Some((_, max)) = &entry.batch {
            self.take_batch(&mut group, *max);
        }
        let started = Instant::now();
        let ctxs: Vec<JobContext> =
            group.iter().map(|h| JobContext::new(&h.job, self.w.store.clone(), self.worker_id.clone())).collect();
        let running: Vec<Running> = group
            .into_iter()
            .zip(&ctxs)
            .map(|(held, ctx)| Running { held, started, recorded: ctx.recorded() })
            .collect();
        for r in &running {
            let latency =
                db_time(&r.held, started).signed_duration_since(r.held.job.run_at).to_std().unwrap_or_default();
            self.shared.stats.claim_latency.observe(latency);
        }
        WorkerStats::add(&self.shared.stats.in_flight, running.len() as u64);
        // Handlers are called inside the task, so even a panic before their first await is caught.
        let handle = match &entry.batch {
            Some((batch, _)) if ctxs.len() > 1 => {
                let (batch, n) = (batch.clone(), ctxs.len());
                self.tasks.spawn(async move {
                    let mut results = batch(ctxs).await;
                    results.truncate(n);
                    while results.len() < n {
                        results.push(Err(JobError::new(
                            ErrorClass::Internal,
                            "the batch handler returned too few results",
                        )));
                    }
                    let ended = Instant::now();
                    results.into_iter().map(|r| (r, ended)).collect()
                })
            }
            _ => {
                let run = entry.run.clone();
                let pool = self.w.store.pool().clone();
                let ctx = ctxs.into_iter().next().expect("a group has a job");
                self.tasks.spawn(async move { vec![run_one(run, ctx, pool).await] })
            }
        };
        self.running.insert(handle.id(), running);
    }

    /// Adds to `group` (one job, of a batch kind) the buffered jobs of its kind and tenant, up to
    /// `max` in all; jobs that call a connection run alone.
    fn take_batch(&mut self, group: &mut Vec<Held>, max: usize) {
        let first = &group[0].job;
        if first.connection_id.is_some() {
            return;
        }
        let (kind, tenant) = (first.kind.clone(), first.tenant_id);
        let mut i = 0;
        while group.len() < max && i < self.buffer.len() {
            let j = &self.buffer[i].job;
            if j.kind == kind && j.tenant_id == tenant && j.connection_id.is_none() {
                group.extend(self.buffer.remove(i));
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn joined(&mut self, res: Result<(tokio::task::Id, Outcome), JoinError>) {
        let (id, result) = match res {
            Ok((id, outs)) => (id, Ok(outs)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(group) = self.running.remove(&id) else { return };
        let outs: Vec<(Ran, Instant)> = match result {
            Ok(outs) => outs.into_iter().map(|(r, ended)| (Ran::Done(r), ended)).collect(),
            Err(e) if e.is_panic() => {
                WorkerStats::add(&self.shared.stats.panics, 1);
                let msg = panic_message(e.into_panic());
                let jobs: Vec<_> = group.iter().map(|r| r.held.job.id).collect();
                tracing::error!(worker = %self.w.cfg.id, ?jobs, kind = %group[0].held.job.kind, panic = %msg, "job handler panicked");
                let err = JobError::new(ErrorClass::Internal, format!("handler panicked: {msg}"));
                group.iter().map(|_| (Ran::Done(Err(err.clone())), Instant::now())).collect()
            }
            // Aborted at the end of the shutdown grace.
            Err(_) => group.iter().map(|_| (Ran::Aborted, Instant::now())).collect(),
        };
        for (running, (ran, ended)) in group.into_iter().zip(outs) {
            self.joined_one(running, ran, ended);
        }
    }

    fn joined_one(&mut self, running: Running, ran: Ran, ended: Instant) {
        let Running { held, started, recorded } = running;
        self.shared.stats.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.stats.run_duration.observe(ended - started);
        let err = match ran {
            Ran::Done(Ok(())) if recorded.load(std::sync::atomic::Ordering::Acquire) => {
                // Its success committed with the handler's own writes: nothing left to write.
                WorkerStats::add(&self.shared.stats.succeeded, 1);
                WorkerStats::add(&self.shared.stats.succeeded_in_handler, 1);
                self.shared.held().remove(&(held.job.id, held.job.attempts));
                return;
            }
            Ran::Done(Ok(())) => return self.send(&held, started, ended, Finish::Succeeded),
            Ran::Done(Err(err)) => err,
            Ran::Aborted => return self.send(&held, started, ended, Finish::Released),
        };
        if err.deferred {
            let after = err.retry_after.unwrap_or(Duration::from_secs(1));
            let run_at = db_time(&held, ended) + TimeDelta::from_std(after).unwrap_or(TimeDelta::days(1));
            return self.send(&held, started, ended, Finish::Deferred { message: err.message, run_at });
        }
        let default = RetryPolicy::default();
        let policy = self.w.handlers.policy(&held.job.kind).unwrap_or(&default);
        let j = &held.job;
        let outcome = match policy.after_failure(&err, j.attempts, j.max_attempts, rand::random::<f64>()) {
            AfterFailure::RetryIn(d) => Finish::Failed {
                class: err.class,
                message: err.message,
                retry_at: db_time(&held, ended) + TimeDelta::from_std(d).unwrap_or(TimeDelta::days(365)),
            },
            AfterFailure::Quarantine => Finish::Quarantined { class: err.class, message: err.message },
        };
        self.send(&held, started, ended, outcome);
    }
}

/// How a job's handler ended.
enum Ran {
    Done(Result<(), JobError>),
    /// Aborted at the end of the shutdown grace.
    Aborted,
}

/// Runs one job's handler: a job that calls a disabled connection is not run (`invalid`
/// quarantines it with the reason).
async fn run_one(run: HandlerFn, ctx: JobContext, pool: PgPool) -> (Result<(), JobError>, Instant) {
    if let Some(c) = ctx.connection_id {
        match spine_store::queue::blocked_connection(&pool, c).await {
            Ok(Some(why)) => return (Err(JobError::new(ErrorClass::Invalid, why)), Instant::now()),
            Ok(None) => {}
            Err(e) => {
                let err = JobError::new(ErrorClass::Internal, format!("checking connection {c}: {e}"));
                return (Err(err), Instant::now());
            }
        }
    }
    let r = run(ctx).await;
    (r, Instant::now())
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(a panic without a message)".to_owned(),
        },
    }
}
