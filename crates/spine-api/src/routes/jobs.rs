//! Jobs: look at them and act on them. A tenant credential with `jobs:admin` sees its tenant
//! (the transaction runs under RLS); the service role sees every tenant and may filter by one.

use axum::Json;
use axum::extract::State;
use chrono::{Duration, Utc};
use spine_core::auth::{Principal, Scope};
use spine_core::ids::TenantId;
use spine_store::AnyTx;
use spine_store::queue::{self, JobFilter};
use uuid::Uuid;

use crate::dto::jobs::{ActionResult, Job, JobAction, JobDetail, JobQuery, JobStats};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};
use crate::state::AppState;

/// A tenant transaction (RLS) for tenant credentials with `jobs:admin`, a system one for the
/// service role.
pub(crate) async fn open(state: &AppState, auth: &Auth) -> ApiResult<(AnyTx, Option<TenantId>)> {
    match &auth.0 {
        Principal::Service { .. } => Ok((AnyTx::System(state.store.system_tx().await?), None)),
        _ => {
            let t = auth.require_scope(Scope::JobsAdmin)?;
            Ok((AnyTx::Tenant(state.store.tenant_tx(t).await?), Some(t)))
        }
    }
}

fn filter(q: &JobQuery, tenant: Option<TenantId>, default_limit: i64) -> ApiResult<JobFilter> {
    if q.older_than_secs.is_some_and(|s| s < 0) {
        return Err(ApiError::from(spine_core::names::InvalidValue {
            field: "older_than_secs",
            reason: "must not be negative".into(),
        }));
    }
    Ok(JobFilter {
        ids: None,
        // A tenant credential is confined to its tenant; the service role may pick one.
        tenant: tenant.map(|t| t.as_uuid()).or(q.tenant),
        state: q.state,
        kind: q.kind.clone(),
        created_before: q.older_than_secs.map(|s| Utc::now() - Duration::seconds(s)),
        limit: q.limit.unwrap_or(default_limit),
    })
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = Vec<Job>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<JobQuery>,
) -> ApiResult<Json<Vec<Job>>> {
    let (mut c, tenant) = open(&state, &auth).await?;
    let rows = queue::list(c.conn(), &filter(&q, tenant, 100)?).await?;
    c.commit().await?;
    Ok(Json(rows.into_iter().map(Job::from).collect()))
}

/// One job with every attempt.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<Json<JobDetail>> {
    let (mut c, _) = open(&state, &auth).await?;
    let job = queue::get(c.conn(), id).await.map_err(|e| match e {
        spine_store::StoreError::NotFound => ApiError::not_found("job"),
        other => other.into(),
    })?;
    let attempts = queue::attempts(c.conn(), id).await?;
    c.commit().await?;
    Ok(Json(JobDetail { job: job.into(), attempts: attempts.into_iter().map(Into::into).collect() }))
}

/// Queue depth per state and kind, with the wait of the oldest due job.
#[utoipa::path(get, path = "/v1/jobs/stats", tag = "jobs",
    responses((status = 200, body = Vec<JobStats>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stats(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<JobStats>>> {
    let (mut c, tenant) = open(&state, &auth).await?;
    let rows = queue::stats(c.conn(), tenant.map(|t| t.as_uuid())).await?;
    c.commit().await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

async fn act(state: &AppState, auth: &Auth, action: JobAction, f: JobFilter) -> ApiResult<Json<ActionResult>> {
    let (mut c, _) = open(state, auth).await?;
    let ids = match action {
        JobAction::Retry => queue::retry(c.conn(), &f).await?,
        JobAction::Cancel => queue::cancel(c.conn(), &f).await?,
        JobAction::Requeue => queue::requeue(c.conn(), &f).await?,
    };
    c.commit().await?;
    tracing::info!(action = ?action, jobs = ids.len(), principal = %auth.0.actor_ref(), "job action");
    Ok(Json(ActionResult { action, affected: ids.len(), ids }))
}

/// Act on one job: `retry` (a failed job runs now), `cancel` (queued or failed), `requeue` (quarantined → queued with a fresh attempt budget).
#[utoipa::path(post, path = "/v1/jobs/{id}/{action}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id"), ("action" = JobAction, Path, description = "retry, cancel or requeue")),
    responses((status = 200, body = ActionResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn act_one(
    State(state): State<AppState>,
    auth: Auth,
    AppPath((id, action)): AppPath<(Uuid, JobAction)>,
) -> ApiResult<Json<ActionResult>> {
    let tenant = auth.0.tenant().map(|t| t.as_uuid());
    act(&state, &auth, action, JobFilter { ids: Some(vec![id]), tenant, limit: 1, ..Default::default() }).await
}

/// Act on every job matching a filter (at most `limit`, default 1,000).
#[utoipa::path(post, path = "/v1/jobs/actions/{action}", tag = "jobs", request_body = JobQuery,
    params(("action" = JobAction, Path, description = "retry, cancel or requeue")),
    responses((status = 200, body = ActionResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn act_many(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(action): AppPath<JobAction>,
    AppJson(q): AppJson<JobQuery>,
) -> ApiResult<Json<ActionResult>> {
    act(&state, &auth, action, filter(&q, auth.0.tenant(), 1000)?).await
}
