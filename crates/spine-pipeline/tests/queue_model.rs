//! Model test of the queue's state machine: random sequences of operations run against the real
//! store functions and against a small in-memory reference model of the documented semantics;
//! after every step the two must agree on each job's state, attempts, lease owner, last error
//! class, whether it is due, and how many attempt rows it has.
//!
//! `PROPTEST_CASES` overrides the number of cases (default 32, at most 40 operations each).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::{AfterFailure, ErrorClass, JobError, JobState, RetryPolicy};
use spine_store::Store;
use spine_store::queue::{self, Enqueued, Finish, Finished, JobFilter, NewJob};
use sqlx::PgPool;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);
/// The jitter unit used for every failure decision.
const UNIT: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum W {
    A,
    B,
}

impl W {
    fn id(self) -> &'static str {
        match self {
            W::A => "model-a",
            W::B => "model-b",
        }
    }
    fn other(self) -> W {
        match self {
            W::A => W::B,
            W::B => W::A,
        }
    }
}

/// Who finishes a job: its lease owner or the other worker, with its current attempt or a stale one.
#[derive(Clone, Copy, Debug)]
struct By {
    owner: bool,
    stale: bool,
}

/// `Fail`'s `retry_after`: for rate_limited, the remote's Retry-After (30 s) or none (the 60 s window).
#[derive(Clone, Debug)]
enum Op {
    Enqueue { dedupe: Option<u8>, max_attempts: i32 },
    Claim { w: W, limit: i64 },
    Heartbeat { w: W },
    Succeed { pick: usize, by: By },
    Fail { pick: usize, by: By, class: ErrorClass, retry_after: bool },
    Release { pick: usize, by: By },
    Defer { pick: usize, by: By },
    Expire { pick: usize },
    Cancel { pick: usize },
    Retry { pick: usize },
    Requeue { pick: usize },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let w = || prop_oneof![Just(W::A), Just(W::B)];
    let by = || (prop::bool::weighted(0.85), prop::bool::weighted(0.1)).prop_map(|(owner, stale)| By { owner, stale });
    let class = prop::sample::select(ErrorClass::ALL.to_vec());
    let op = prop_oneof![
        3 => (prop::option::of(0u8..3), 1i32..=3).prop_map(|(dedupe, max_attempts)| Op::Enqueue { dedupe, max_attempts }),
        3 => (w(), 1i64..=3).prop_map(|(w, limit)| Op::Claim { w, limit }),
        1 => w().prop_map(|w| Op::Heartbeat { w }),
        2 => (any::<usize>(), by()).prop_map(|(pick, by)| Op::Succeed { pick, by }),
        3 => (any::<usize>(), by(), class, any::<bool>())
            .prop_map(|(pick, by, class, retry_after)| Op::Fail { pick, by, class, retry_after }),
        1 => (any::<usize>(), by()).prop_map(|(pick, by)| Op::Release { pick, by }),
        1 => (any::<usize>(), by()).prop_map(|(pick, by)| Op::Defer { pick, by }),
        1 => any::<usize>().prop_map(|pick| Op::Expire { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Requeue { pick }),
    ];
    prop::collection::vec(op, 1..=40)
}

/// A deliberately wrong rule, to show that the test can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutant {
    None,
    /// "A released job keeps the attempt it used" (the store gives it back).
    ReleaseKeepsAttempt,
}

#[derive(Clone, Debug, PartialEq)]
struct MJob {
    id: Uuid,
    state: JobState,
    attempts: i32,
    max_attempts: i32,
    owner: Option<W>,
    /// For queued/failed jobs: whether run_at has come.
    due: bool,
    dedupe: Option<u8>,
    last_class: Option<ErrorClass>,
    attempt_rows: i64,
}

impl MJob {
    fn unfinished(&self) -> bool {
        matches!(self.state, JobState::Queued | JobState::Running | JobState::Failed)
    }
    fn claimable(&self) -> bool {
        matches!(self.state, JobState::Queued | JobState::Failed) && self.due
    }
}

struct Case<'a> {
    pool: &'a PgPool,
    store: Store,
    tenant: TenantId,
    jobs: Vec<MJob>,
    mutant: Mutant,
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

impl Case<'_> {
    /// Picks a job for a finishing op: among running jobs when there are any.
    fn pick_running(&self, pick: usize) -> Option<usize> {
        let running: Vec<usize> = (0..self.jobs.len()).filter(|i| self.jobs[*i].state == JobState::Running).collect();
        if !running.is_empty() {
            return Some(running[pick % running.len()]);
        }
        (!self.jobs.is_empty()).then(|| pick % self.jobs.len())
    }

    fn pick_any(&self, pick: usize) -> Option<usize> {
        (!self.jobs.is_empty()).then(|| pick % self.jobs.len())
    }

    /// Finishes job `i` as `by` says; returns whether the store applied it, after checking that
    /// the model agrees.
    async fn finish(&mut self, i: usize, by: By, outcome: Finish) -> Result<bool, String> {
        let j = &self.jobs[i];
        let w = match (j.owner, by.owner) {
            (Some(o), true) => o,
            (Some(o), false) => o.other(),
            (None, _) => W::A,
        };
        let attempt = if by.stale { j.attempts - 1 } else { j.attempts };
        let now = Utc::now();
        let f = Finished { id: j.id, attempt: attempt.max(1), started_at: now, finished_at: now, outcome };
        let applied = !queue::finish(self.pool, w.id(), std::slice::from_ref(&f)).await.map_err(e)?.is_empty();
        let expect = j.state == JobState::Running && j.owner == Some(w) && j.attempts == f.attempt;
        check(applied == expect, || format!("finish of job {i} by {w:?} at attempt {}: applied {applied}", f.attempt))?;
        Ok(applied)
    }

    async fn step(&mut self, op: &Op) -> Result<(), String> {
        let policy = RetryPolicy::default();
        match *op {
            Op::Enqueue { dedupe, max_attempts } => {
                let mut job = NewJob::new(self.tenant, "model", json!({}));
                job.dedupe_key = dedupe.map(|d| format!("key-{d}"));
                job.max_attempts = max_attempts;
                let mut tx = self.store.tenant_tx(self.tenant).await.map_err(e)?;
                let got = queue::enqueue(tx.conn(), &job).await.map_err(e)?;
                tx.commit().await.map_err(e)?;
                let holder = self.jobs.iter().find(|j| dedupe.is_some() && j.dedupe == dedupe && j.unfinished());
                match (holder, got) {
                    (Some(h), Enqueued::Duplicate(id)) => check(h.id == id, || "duplicate of another job".into())?,
                    (None, Enqueued::New(id)) => self.jobs.push(MJob {
                        id,
                        state: JobState::Queued,
                        attempts: 0,
                        max_attempts,
                        owner: None,
                        due: true,
                        dedupe,
                        last_class: None,
                        attempt_rows: 0,
                    }),
                    (h, got) => return Err(format!("enqueue: model holder {:?}, store {got:?}", h.map(|h| h.id))),
                }
            }
            Op::Claim { w, limit } => {
                let got = queue::claim(self.pool, w.id(), None, limit, LEASE).await.map_err(e)?;
                let due = self.jobs.iter().filter(|j| j.claimable()).count();
                check(got.len() == due.min(limit as usize), || format!("claim {limit}: got {}, {due} due", got.len()))?;
                let ids: HashSet<Uuid> = got.iter().map(|c| c.id).collect();
                check(ids.len() == got.len(), || "a job claimed twice in one claim".into())?;
                for c in &got {
                    let j = self.jobs.iter_mut().find(|j| j.id == c.id).ok_or("claimed a job the model lacks")?;
                    check(j.claimable(), || format!("claimed a job that is not due: {j:?}"))?;
                    check(c.attempts == j.attempts + 1, || {
                        format!("claim attempt {} after {}", c.attempts, j.attempts)
                    })?;
                    j.state = JobState::Running;
                    j.attempts += 1;
                    j.owner = Some(w);
                }
            }
            Op::Heartbeat { w } => {
                let all: Vec<Uuid> = self.jobs.iter().map(|j| j.id).collect();
                let got: HashSet<Uuid> =
                    queue::heartbeat(self.pool, w.id(), &all, LEASE).await.map_err(e)?.into_iter().collect();
                let expect: HashSet<Uuid> = self
                    .jobs
                    .iter()
                    .filter(|j| j.state == JobState::Running && j.owner == Some(w))
                    .map(|j| j.id)
                    .collect();
                check(got == expect, || format!("heartbeat of {w:?}: {} held, model {}", got.len(), expect.len()))?;
            }
            Op::Succeed { pick, by } => {
                let Some(i) = self.pick_running(pick) else { return Ok(()) };
                if self.finish(i, by, Finish::Succeeded).await? {
                    let j = &mut self.jobs[i];
                    (j.state, j.owner, j.last_class) = (JobState::Succeeded, None, None);
                    j.attempt_rows += 1;
                }
            }
            Op::Fail { pick, by, class, retry_after } => {
                let Some(i) = self.pick_running(pick) else { return Ok(()) };
                let err = JobError {
                    class,
                    message: format!("{class} trouble"),
                    retry_after: retry_after.then_some(Duration::from_secs(30)),
                    deferred: false,
                };
                let (attempts, max) = (self.jobs[i].attempts, self.jobs[i].max_attempts);
                let decision = policy.after_failure(&err, attempts.max(1), max, UNIT);
                let outcome = match decision {
                    AfterFailure::RetryIn(d) => Finish::Failed {
                        class,
                        message: err.message.clone(),
                        retry_at: Utc::now() + TimeDelta::from_std(d).map_err(e)?,
                    },
                    AfterFailure::Quarantine => Finish::Quarantined { class, message: err.message.clone() },
                };
                if self.finish(i, by, outcome).await? {
                    let j = &mut self.jobs[i];
                    (j.owner, j.last_class) = (None, Some(class));
                    j.attempt_rows += 1;
                    match decision {
                        AfterFailure::RetryIn(d) => (j.state, j.due) = (JobState::Failed, d.is_zero()),
                        AfterFailure::Quarantine => j.state = JobState::Quarantined,
                    }
                }
            }
            Op::Release { pick, by } => {
                let Some(i) = self.pick_running(pick) else { return Ok(()) };
                if self.finish(i, by, Finish::Released).await? {
                    let j = &mut self.jobs[i];
                    (j.state, j.owner, j.due) = (JobState::Queued, None, true);
                    if self.mutant != Mutant::ReleaseKeepsAttempt {
                        j.attempts -= 1;
                    }
                    j.attempt_rows += 1;
                }
            }
            Op::Defer { pick, by } => {
                // A rate limit put the job off for an hour: queued, not due, the attempt not counted.
                let Some(i) = self.pick_running(pick) else { return Ok(()) };
                let run_at = Utc::now() + TimeDelta::hours(1);
                if self.finish(i, by, Finish::Deferred { message: "over the limit".into(), run_at }).await? {
                    let j = &mut self.jobs[i];
                    (j.state, j.owner, j.due, j.last_class) =
                        (JobState::Queued, None, false, Some(ErrorClass::RateLimited));
                    j.attempts -= 1;
                    j.attempt_rows += 1;
                }
            }
            Op::Expire { pick } => {
                let Some(i) = self.pick_running(pick) else { return Ok(()) };
                // The job's lease and its worker's (decision 0028) both lapse.
                sqlx::query(
                    "WITH j AS (UPDATE qiserver.jobs SET lease_expires_at = now() - interval '1 second'
                                WHERE id = $1 AND state = 'running' RETURNING lease_owner)
                     INSERT INTO qiserver.job_workers (worker_id, lease_expires_at)
                     SELECT lease_owner, now() - interval '1 second' FROM j
                     ON CONFLICT (worker_id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at",
                )
                .bind(self.jobs[i].id)
                .execute(self.pool)
                .await
                .map_err(e)?;
                let n = queue::reap_expired(self.pool).await.map_err(e)?;
                let j = &mut self.jobs[i];
                let running = j.state == JobState::Running;
                check(n == u64::from(running), || format!("reaped {n}, model running: {running}"))?;
                if running {
                    j.state = if j.attempts >= j.max_attempts { JobState::Quarantined } else { JobState::Failed };
                    (j.owner, j.due, j.last_class) = (None, true, Some(ErrorClass::LeaseExpired));
                    j.attempt_rows += 1;
                }
            }
            Op::Cancel { pick } | Op::Retry { pick } | Op::Requeue { pick } => {
                let Some(i) = self.pick_any(pick) else { return Ok(()) };
                let f = JobFilter { ids: Some(vec![self.jobs[i].id]), limit: 10, ..Default::default() };
                let mut tx = self.store.tenant_tx(self.tenant).await.map_err(e)?;
                let got = match op {
                    Op::Cancel { .. } => queue::cancel(tx.conn(), &f).await,
                    Op::Retry { .. } => queue::retry(tx.conn(), &f).await,
                    _ => queue::requeue(tx.conn(), &f).await,
                };
                let j = &self.jobs[i];
                // A quarantined job whose dedupe key another unfinished job holds is skipped by
                // requeue (that job does the work).
                let blocked = matches!(op, Op::Requeue { .. })
                    && j.state == JobState::Quarantined
                    && j.dedupe.is_some()
                    && self.jobs.iter().any(|o| o.id != j.id && o.dedupe == j.dedupe && o.unfinished());
                let got = match got {
                    Ok(ids) => {
                        tx.commit().await.map_err(e)?;
                        ids
                    }
                    Err(err) if blocked => {
                        check(err.to_string().contains("dedupe") || err.to_string().contains("exist"), || e(&err))?;
                        return Ok(());
                    }
                    Err(err) => return Err(format!("{op:?}: {err}")),
                };
                let j = &mut self.jobs[i];
                let applies = match op {
                    Op::Cancel { .. } => matches!(j.state, JobState::Queued | JobState::Failed),
                    Op::Retry { .. } => j.state == JobState::Failed,
                    _ => j.state == JobState::Quarantined && !blocked,
                };
                check(got == if applies { vec![j.id] } else { vec![] }, || format!("{op:?} on {j:?}: {got:?}"))?;
                if applies {
                    match op {
                        Op::Cancel { .. } => j.state = JobState::Cancelled,
                        Op::Retry { .. } => j.due = true,
                        _ => (j.state, j.attempts, j.due) = (JobState::Queued, 0, true),
                    }
                }
            }
        }
        Ok(())
    }

    /// Compares every job of the tenant with the model.
    async fn compare(&self) -> Result<(), String> {
        type Row = (Uuid, String, i32, Option<String>, Option<String>, bool, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT j.id, j.state, j.attempts, CASE WHEN j.state = 'running' THEN j.lease_owner END, j.last_error_class,
                    j.run_at <= now(),
                    (SELECT count(*) FROM qiserver.job_attempt_history a WHERE a.job_id = j.id)
             FROM qiserver.jobs j WHERE j.tenant_id = $1",
        )
        .bind(self.tenant.as_uuid())
        .fetch_all(self.pool)
        .await
        .map_err(e)?;
        check(rows.len() == self.jobs.len(), || format!("{} jobs, model {}", rows.len(), self.jobs.len()))?;
        let rows: HashMap<Uuid, Row> = rows.into_iter().map(|r| (r.0, r)).collect();
        for (i, m) in self.jobs.iter().enumerate() {
            let (_, state, attempts, owner, class, due, n) = rows.get(&m.id).ok_or("a model job is missing")?;
            let real = (state.as_str(), *attempts, owner.as_deref(), class.as_deref(), *n);
            let model = (
                m.state.as_str(),
                m.attempts,
                m.owner.map(W::id),
                m.last_class.map(ErrorClass::as_str),
                m.attempt_rows,
            );
            check(real == model, || format!("job {i}: store {real:?}, model {model:?}"))?;
            if matches!(m.state, JobState::Queued | JobState::Failed) {
                check(*due == m.due, || format!("job {i} ({state}): due {due}, model {}", m.due))?;
            }
        }
        Ok(())
    }
}

async fn run_case(pool: &PgPool, ops: &[Op], mutant: Mutant) -> Result<(), String> {
    // Claims and reaping see every tenant: start each case from an empty queue, in a fresh tenant.
    sqlx::query("DELETE FROM qiserver.jobs").execute(pool).await.map_err(e)?;
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, 'Model')")
        .bind(tenant.as_uuid())
        .bind(format!("m{}", &tenant.as_uuid().simple().to_string()[24..]))
        .execute(pool)
        .await
        .map_err(e)?;
    let mut case = Case { pool, store: Store::new(pool.clone()), tenant, jobs: Vec::new(), mutant };
    for (n, op) in ops.iter().enumerate() {
        case.step(op).await.map_err(|m| format!("step {n} {op:?}: {m}"))?;
        case.compare().await.map_err(|m| format!("after step {n} {op:?}: {m}"))?;
    }
    Ok(())
}

fn runner(cases: u32, deterministic: bool) -> TestRunner {
    let config = Config { cases, max_shrink_iters: 200, failure_persistence: None, ..Config::default() };
    if deterministic {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    } else {
        TestRunner::new(config)
    }
}

fn run_model(mutant: Mutant, cases: u32, deterministic: bool) -> Result<usize, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(e)?;
    let db = rt.block_on(spine_testkit::test_db());
    let steps = Cell::new(0usize);
    let result = runner(cases, deterministic).run(&ops(), |ops| {
        steps.set(steps.get() + ops.len());
        rt.block_on(run_case(&db.pool, &ops, mutant)).map_err(TestCaseError::fail)
    });
    result.map(|()| steps.get()).map_err(|f| f.to_string())
}

#[test]
fn the_queue_agrees_with_the_reference_model() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(32);
    let t = std::time::Instant::now();
    match run_model(Mutant::None, cases, false) {
        Ok(steps) => eprintln!("{cases} cases, {steps} operations in {:?}", t.elapsed()),
        Err(f) => panic!("the store and the model disagree: {f}"),
    }
}

/// The test can fail: with one deliberately wrong rule in the model it must find a disagreement.
#[test]
fn a_wrong_model_rule_is_caught() {
    let err = run_model(Mutant::ReleaseKeepsAttempt, 32, true).expect_err("the wrong rule went unnoticed");
    eprintln!("as expected, the wrong rule was caught: {err}");
    assert!(err.contains("store") && err.contains("model"), "{err}");
}
