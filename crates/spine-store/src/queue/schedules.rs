//! Cron schedules (qiserver.job_schedules) and the scheduler's tick step.
//!
//! CRUD takes the caller's connection: a `TenantTx` for tenant-scoped API calls (RLS confines it to
//! the tenant), a `SystemTx` for the service role (all tenants; `list` can narrow to one).
//!
//! [`fire_due`] is a cross-tenant step on the pool, running as the connecting (owner) role like
//! `claim`. In one transaction it locks the due schedules `FOR UPDATE SKIP LOCKED`, enqueues their
//! tick jobs and advances `next_run_at`, so however many schedulers run, a tick enqueues exactly
//! one job: a concurrent caller either skips the locked row or, once it is committed, no longer
//! sees it due. The dedupe key `schedule:<id>:<tick>` is a second guard while that job is
//! unfinished. Which ticks fire after downtime is decided by [`CronSchedule::plan_due`] (late
//! ticks within [`spine_core::cron::MISFIRE_GRACE`] always fire; older, missed ones are dropped
//! under `skip` or fire a single job under `run_once`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use spine_core::cron::{CatchUp, CronSchedule};
use spine_core::ids::TenantId;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Enqueued, NewJob, enqueue, enqueue_many};
use crate::StoreError;

/// A schedule to create.
#[derive(Clone, Debug)]
pub struct NewSchedule {
    pub tenant: TenantId,
    /// Unique per tenant, 1–200 characters.
    pub name: String,
    /// The job kind each tick enqueues.
    pub kind: String,
    /// The payload of each job (a JSON object, the job's versioned tagged payload).
    pub payload: Value,
    /// 5 fields, or 6 with seconds first (see `spine_core::cron`).
    pub cron_expression: String,
    /// IANA zone the expression is read in.
    pub timezone: String,
    pub enabled: bool,
    pub catch_up: CatchUp,
    pub created_by: Option<String>,
}

impl NewSchedule {
    /// An enabled UTC schedule with an empty payload and `skip` catch-up.
    pub fn new(tenant: TenantId, name: impl Into<String>, kind: impl Into<String>, cron: impl Into<String>) -> Self {
        Self {
            tenant,
            name: name.into(),
            kind: kind.into(),
            payload: Value::Object(Default::default()),
            cron_expression: cron.into(),
            timezone: "UTC".to_owned(),
            enabled: true,
            catch_up: CatchUp::Skip,
            created_by: None,
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ScheduleRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub kind: String,
    pub payload: Value,
    pub cron_expression: String,
    pub timezone: String,
    pub enabled: bool,
    /// `skip` or `run_once` (see [`ScheduleRow::catch_up`]).
    pub catch_up: String,
    /// The next tick. Kept but ignored while paused; recomputed from now on resume.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last tick that enqueued a job (manual triggers do not count).
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

impl ScheduleRow {
    pub fn catch_up(&self) -> CatchUp {
        self.catch_up.parse().unwrap_or_default()
    }
}

/// One job enqueued for one tick by [`fire_due`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub schedule_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub kind: String,
    pub tick: DateTime<Utc>,
    pub job_id: Uuid,
    /// The tick's job already existed (unfinished, same dedupe key); nothing new was enqueued.
    pub duplicate: bool,
}

const COLS: &str = "id, tenant_id, name, kind, payload, cron_expression, timezone, enabled, catch_up, next_run_at,
    last_run_at, last_job_id, created_at, updated_at, created_by";

/// The dedupe key of a tick's job: `schedule:<id>:<tick, RFC 3339 UTC>`.
pub fn dedupe_key(schedule: Uuid, tick: DateTime<Utc>) -> String {
    format!("schedule:{schedule}:{}", tick.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn validate(new: &NewSchedule) -> Result<CronSchedule, StoreError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid("name: must be 1 to 200 characters, without control characters"));
    }
    let kind = new.kind.as_bytes();
    let kind_ok = kind.len() <= 63
        && kind.first().is_some_and(u8::is_ascii_lowercase)
        && kind.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'.');
    if !kind_ok {
        return Err(invalid(
            "kind: must start with a lowercase letter and hold only a-z, 0-9, '_' and '.' (at most 63)",
        ));
    }
    if !new.payload.is_object() {
        return Err(invalid("payload: must be a JSON object"));
    }
    CronSchedule::parse(&new.cron_expression, &new.timezone).map_err(|e| invalid(e.to_string()))
}

/// Creates a schedule; `next_run_at` is its first tick after now. A taken name is `Conflict`.
pub async fn create(conn: &mut sqlx::PgConnection, new: &NewSchedule) -> Result<ScheduleRow, StoreError> {
    let cron = validate(new)?;
    let sql = format!(
        "INSERT INTO qiserver.job_schedules (id, tenant_id, name, kind, payload, cron_expression, timezone, enabled,
                                            catch_up, next_run_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(new.tenant.as_uuid())
        .bind(new.name.trim())
        .bind(&new.kind)
        .bind(&new.payload)
        .bind(cron.expression())
        .bind(cron.timezone())
        .bind(new.enabled)
        .bind(new.catch_up.as_str())
        .bind(cron.next_after(Utc::now()))
        .bind(new.created_by.as_deref())
        .fetch_one(conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                StoreError::Conflict(format!("a schedule named {:?} already exists", new.name.trim()))
            }
            _ => StoreError::on_constraint(e, "schedule"),
        })
}

/// Schedules by tenant and name; `tenant` narrows a system-wide listing.
pub async fn list(conn: &mut sqlx::PgConnection, tenant: Option<TenantId>) -> Result<Vec<ScheduleRow>, StoreError> {
    let sql = format!(
        "SELECT {COLS} FROM qiserver.job_schedules WHERE ($1::uuid IS NULL OR tenant_id = $1) ORDER BY tenant_id, name"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant.map(|t| t.as_uuid())).fetch_all(conn).await?)
}

pub async fn get(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<ScheduleRow, StoreError> {
    let sql = format!("SELECT {COLS} FROM qiserver.job_schedules WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?.ok_or(StoreError::NotFound)
}

/// Pauses (`false`) or resumes (`true`) a schedule. Resuming a paused schedule sets `next_run_at`
/// to its first tick after now, so ticks that fell in the pause never fire. Idempotent.
pub async fn set_enabled(conn: &mut sqlx::PgConnection, id: Uuid, enabled: bool) -> Result<ScheduleRow, StoreError> {
    let sql = format!("SELECT {COLS} FROM qiserver.job_schedules WHERE id = $1 FOR UPDATE");
    let row: ScheduleRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    if row.enabled == enabled {
        return Ok(row);
    }
    let next = if enabled {
        CronSchedule::parse(&row.cron_expression, &row.timezone)
            .map_err(|e| invalid(e.to_string()))?
            .next_after(Utc::now())
    } else {
        row.next_run_at
    };
    let sql =
        format!("UPDATE qiserver.job_schedules SET enabled = $2, next_run_at = $3 WHERE id = $1 RETURNING {COLS}");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(enabled).bind(next).fetch_one(conn).await?)
}

/// Deletes a schedule; its jobs stay, with `schedule_id` cleared.
pub async fn delete(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM qiserver.job_schedules WHERE id = $1").bind(id).execute(conn).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Enqueues one job for the schedule now, outside its cron ticks (paused or not). It carries
/// `schedule_id` but no dedupe key, and does not move `next_run_at` or `last_run_at`.
pub async fn trigger_now(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Enqueued, StoreError> {
    let row = get(&mut *conn, id).await?;
    let mut job = NewJob::new(TenantId::from(row.tenant_id), row.kind, row.payload);
    job.schedule_id = Some(row.id);
    enqueue(conn, &job).await
}

/// The earliest `next_run_at` of an enabled schedule: when the scheduler next has work.
pub async fn next_due_at(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT min(next_run_at) FROM qiserver.job_schedules WHERE enabled").fetch_one(pool).await?)
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    kind: String,
    payload: Value,
    cron_expression: String,
    timezone: String,
    catch_up: String,
    next_run_at: DateTime<Utc>,
}

/// The scheduler's step: enqueues the jobs of every schedule due at `now` (at most `max` jobs,
/// earliest schedules first) and advances them, in one transaction. Each tick's job has
/// `run_at` = the tick, `schedule_id` set and the dedupe key [`dedupe_key`]. Runs as the owner
/// role across tenants. A schedule whose stored expression no longer parses gets
/// `next_run_at = NULL` (it stops, and the error is logged).
pub async fn fire_due(pool: &PgPool, now: DateTime<Utc>, max: usize) -> Result<Vec<Fired>, StoreError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT id, tenant_id, name, kind, payload, cron_expression, timezone, catch_up, next_run_at
         FROM qiserver.job_schedules
         WHERE enabled AND next_run_at <= $1
         ORDER BY next_run_at, id
         LIMIT $2
         FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(i64::try_from(max).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }

    let mut jobs: Vec<NewJob> = Vec::new();
    let mut ticks: Vec<(usize, DateTime<Utc>)> = Vec::new(); // (index into `due`, tick) per job
    let mut next: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(due.len());
    let mut handled = 0;
    for (i, s) in due.iter().enumerate() {
        let room = max - jobs.len();
        if room == 0 {
            break;
        }
        handled += 1;
        let cron = match CronSchedule::parse(&s.cron_expression, &s.timezone) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(tenant = %s.tenant_id, schedule = %s.id, name = %s.name, error = %e,
                    "cron schedule no longer parses; stopping it");
                next.push(None);
                continue;
            }
        };
        let plan = cron.plan_due(s.catch_up.parse().unwrap_or_default(), s.next_run_at, now, room);
        if let Some(m) = plan.missed {
            tracing::warn!(tenant = %s.tenant_id, schedule = %s.id, name = %s.name, catch_up = %s.catch_up,
                first = %m.first, last = %m.last, "cron schedule missed ticks while no scheduler ran");
        }
        for tick in plan.fire {
            let mut job = NewJob::new(TenantId::from(s.tenant_id), s.kind.clone(), s.payload.clone());
            job.run_at = Some(tick);
            job.dedupe_key = Some(dedupe_key(s.id, tick));
            job.schedule_id = Some(s.id);
            jobs.push(job);
            ticks.push((i, tick));
        }
        next.push(plan.next_run_at);
    }
    let enqueued = enqueue_many(&mut tx, &jobs).await?;

    // Per schedule: the last tick fired and its job.
    let mut last: Vec<Option<(DateTime<Utc>, Uuid)>> = vec![None; handled];
    let mut fired = Vec::with_capacity(jobs.len());
    for ((i, tick), e) in ticks.into_iter().zip(enqueued) {
        let s = &due[i];
        last[i] = Some((tick, e.id()));
        fired.push(Fired {
            schedule_id: s.id,
            tenant_id: s.tenant_id,
            name: s.name.clone(),
            kind: s.kind.clone(),
            tick,
            job_id: e.id(),
            duplicate: matches!(e, Enqueued::Duplicate(_)),
        });
    }
    let ids: Vec<Uuid> = due[..handled].iter().map(|s| s.id).collect();
    let last_run: Vec<Option<DateTime<Utc>>> = last.iter().map(|l| l.map(|(t, _)| t)).collect();
    let last_job: Vec<Option<Uuid>> = last.iter().map(|l| l.map(|(_, j)| j)).collect();
    sqlx::query(
        "UPDATE qiserver.job_schedules s
         SET next_run_at = u.next_run_at, last_run_at = coalesce(u.last_run_at, s.last_run_at),
             last_job_id = coalesce(u.last_job_id, s.last_job_id)
         FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::uuid[])
              AS u(id, next_run_at, last_run_at, last_job_id)
         WHERE s.id = u.id",
    )
    .bind(&ids)
    .bind(&next)
    .bind(&last_run)
    .bind(&last_job)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(fired)
}
