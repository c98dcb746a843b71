//! Cron schedules: list, create, pause, resume, trigger now, delete. Tenant credentials need
//! `jobs:admin` and act on their tenant (RLS); the service role sees all tenants but creates
//! schedules only through a tenant credential (a schedule belongs to a tenant).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use spine_core::auth::Scope;
use spine_store::StoreError;
use spine_store::queue::schedules::{self, NewSchedule};
use uuid::Uuid;

use crate::dto::schedules::{CreateSchedule, Schedule, ScheduleAction};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, Auth};
use crate::routes::jobs::open;
use crate::state::AppState;

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("schedule"),
        other => other.into(),
    }
}

/// List schedules.
#[utoipa::path(get, path = "/v1/schedules", tag = "jobs",
    responses((status = 200, body = Vec<Schedule>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Schedule>>> {
    let (mut tx, tenant) = open(&state, &auth).await?;
    let rows = schedules::list(tx.conn(), tenant).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// Create a schedule in the caller's tenant.
#[utoipa::path(post, path = "/v1/schedules", tag = "jobs", request_body = CreateSchedule,
    responses((status = 201, body = Schedule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    AppJson(b): AppJson<CreateSchedule>,
) -> ApiResult<(StatusCode, Json<Schedule>)> {
    let tenant = auth.require_scope(Scope::JobsAdmin)?;
    let mut new = NewSchedule::new(tenant, b.name, b.kind, b.cron_expression);
    new.payload = b.payload;
    new.timezone = b.timezone;
    new.catch_up = b.catch_up;
    new.enabled = b.enabled;
    new.created_by = Some(auth.0.actor_ref());
    let mut tx = state.store.tenant_tx(tenant).await?;
    let row = schedules::create(tx.conn(), &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One schedule.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "jobs", params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 200, body = Schedule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<Json<Schedule>> {
    let (mut tx, _) = open(&state, &auth).await?;
    let row = schedules::get(tx.conn(), id).await.map_err(not_found)?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Pause, resume (the next tick is computed from now), or trigger a run now.
#[utoipa::path(post, path = "/v1/schedules/{id}/{action}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Schedule id"), ("action" = ScheduleAction, Path, description = "pause, resume or trigger")),
    responses((status = 200, body = Schedule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn act(
    State(state): State<AppState>,
    auth: Auth,
    AppPath((id, action)): AppPath<(Uuid, ScheduleAction)>,
) -> ApiResult<Json<Schedule>> {
    let (mut tx, _) = open(&state, &auth).await?;
    let mut triggered = None;
    let row = match action {
        ScheduleAction::Pause => schedules::set_enabled(tx.conn(), id, false).await.map_err(not_found)?,
        ScheduleAction::Resume => schedules::set_enabled(tx.conn(), id, true).await.map_err(not_found)?,
        ScheduleAction::Trigger => {
            triggered = Some(schedules::trigger_now(tx.conn(), id).await.map_err(not_found)?.id());
            schedules::get(tx.conn(), id).await.map_err(not_found)?
        }
    };
    tx.commit().await?;
    let mut s = Schedule::from(row);
    s.triggered_job_id = triggered;
    Ok(Json(s))
}

/// Delete a schedule; the jobs it enqueued stay.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "jobs", params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<StatusCode> {
    let (mut tx, _) = open(&state, &auth).await?;
    schedules::delete(tx.conn(), id).await.map_err(not_found)?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
