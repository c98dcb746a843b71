//! Schedule bodies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spine_core::cron::CatchUp;
use spine_store::queue::schedules::ScheduleRow;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// Unique within the tenant.
    pub name: String,
    /// The job kind to enqueue at each tick.
    pub kind: String,
    /// The job payload (a JSON object).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// 5 fields, or 6 with seconds first.
    pub cron_expression: String,
    /// IANA time zone, default UTC.
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub catch_up: CatchUp,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}
fn utc() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleAction {
    Pause,
    Resume,
    Trigger,
}

#[derive(Serialize, ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub cron_expression: String,
    pub timezone: String,
    pub enabled: bool,
    pub catch_up: String,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Set by `trigger`: the job enqueued now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggered_job_id: Option<Uuid>,
}

impl From<ScheduleRow> for Schedule {
    fn from(r: ScheduleRow) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            kind: r.kind,
            payload: r.payload,
            cron_expression: r.cron_expression,
            timezone: r.timezone,
            enabled: r.enabled,
            catch_up: r.catch_up,
            next_run_at: r.next_run_at,
            last_run_at: r.last_run_at,
            last_job_id: r.last_job_id,
            created_at: r.created_at,
            triggered_job_id: None,
        }
    }
}
