//! Job bodies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spine_core::jobs::JobState;
use spine_store::queue::{AttemptRow, JobRow, StatsRow};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema, utoipa::IntoParams, Default)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs created at least this many seconds ago.
    pub older_than_secs: Option<i64>,
    /// Service role only: only this tenant.
    pub tenant: Option<Uuid>,
    /// At most this many (default 100 for listing, 1,000 for actions).
    pub limit: Option<i64>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    Retry,
    Cancel,
    Requeue,
}

#[derive(Serialize, ToSchema)]
pub struct ActionResult {
    pub action: JobAction,
    pub affected: usize,
    pub ids: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub state: String,
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error_class: Option<String>,
    pub last_error_message: Option<String>,
    pub dedupe_key: Option<String>,
    pub file_id: Option<Uuid>,
    pub import_batch_id: Option<Uuid>,
    pub parent_job_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
    /// The connection the job calls, when it names one.
    pub connection_id: Option<Uuid>,
    pub children: Children,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Fan-out: counts of child jobs. `outcome` is `pending` while children run, then `complete`
/// when all succeeded or `partial` when some ended quarantined or cancelled.
#[derive(Serialize, ToSchema)]
pub struct Children {
    pub total: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub outcome: Option<String>,
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        let outcome = (r.children_total > 0).then(|| {
            if r.children_succeeded + r.children_failed < r.children_total {
                "pending"
            } else if r.children_failed > 0 {
                "partial"
            } else {
                "complete"
            }
            .to_owned()
        });
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            kind: r.kind,
            payload: r.payload,
            state: r.state,
            priority: r.priority,
            run_at: r.run_at,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            last_error_class: r.last_error_class,
            last_error_message: r.last_error_message,
            dedupe_key: r.dedupe_key,
            file_id: r.file_id,
            import_batch_id: r.import_batch_id,
            parent_job_id: r.parent_job_id,
            schedule_id: r.schedule_id,
            connection_id: r.connection_id,
            children: Children {
                total: r.children_total,
                succeeded: r.children_succeeded,
                failed: r.children_failed,
                outcome,
            },
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: String,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i32,
}

impl From<AttemptRow> for Attempt {
    fn from(a: AttemptRow) -> Self {
        Self {
            attempt: a.attempt,
            worker_id: a.worker_id,
            started_at: a.started_at,
            finished_at: a.finished_at,
            outcome: a.outcome,
            error_class: a.error_class,
            error_message: a.error_message,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    pub attempts: Vec<Attempt>,
}

#[derive(Serialize, ToSchema)]
pub struct JobStats {
    pub state: String,
    pub kind: String,
    pub jobs: i64,
    /// Seconds the oldest due job has waited (queued or failed-and-due only).
    pub oldest_due_secs: Option<f64>,
}

impl From<StatsRow> for JobStats {
    fn from(s: StatsRow) -> Self {
        Self { state: s.state, kind: s.kind, jobs: s.jobs, oldest_due_secs: s.oldest_due_secs }
    }
}
