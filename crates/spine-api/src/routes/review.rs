//! The review queue and promotion (issue 4 item 8): list and show staged rows with their proposal
//! and match evidence, approve, reject, edit a mapping, bulk-approve a batch, promote a batch.
//! The rules (notes for rejects and merges) live in `spine_pipeline::review`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use spine_core::auth::Scope;
use spine_core::error_code::ErrorCode;
use spine_pipeline::review::{self, ReviewError};
use spine_store::repos::review::{self as queue, ReviewFilter};
use uuid::Uuid;

use super::files::not_found;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Auth};
use crate::state::AppState;

fn review_error(e: ReviewError) -> ApiError {
    match e {
        ReviewError::Rule(msg) => ApiError::new(ErrorCode::InvalidRequest, msg),
        ReviewError::Store(s) => not_found(s, "staged row"),
    }
}

fn to_json(v: impl serde::Serialize) -> ApiResult<Json<Value>> {
    serde_json::to_value(v).map(Json).map_err(|e| ApiError::internal("review json", e))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    pub batch: Option<Uuid>,
    /// pending, approved, rejected, skipped, promoted, error
    pub status: Option<String>,
    /// create, merge, skip
    pub action: Option<String>,
    pub limit: Option<i64>,
    /// Paging: the batch and row number of the last row of the previous page.
    pub after_batch: Option<Uuid>,
    pub after_row: Option<i32>,
}

/// List staged rows awaiting (or past) review.
#[utoipa::path(get, path = "/v1/review", tag = "review", params(ReviewQuery),
    responses((status = 200, description = "Rows in batch and row order"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    AppQuery(q): AppQuery<ReviewQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = auth.require_any_scope(&[Scope::ReviewWrite, Scope::RecordsRead])?;
    let filter = ReviewFilter {
        import_batch_id: q.batch,
        status: q.status,
        action: q.action,
        after: q.after_batch.map(|b| (b, q.after_row.unwrap_or(0))),
        limit: q.limit.unwrap_or(100),
    };
    let mut tx = state.store.tenant_tx(tenant).await?;
    let rows = queue::list(&mut tx, &filter).await?;
    tx.commit().await?;
    to_json(json!({"rows": rows}))
}

/// One staged row: raw data, proposal, match evidence and decision history.
#[utoipa::path(get, path = "/v1/review/{id}", tag = "review", params(("id" = Uuid, Path, description = "Staged row id")),
    responses((status = 200, description = "The row"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<Json<Value>> {
    let tenant = auth.require_any_scope(&[Scope::ReviewWrite, Scope::RecordsRead])?;
    to_json(review::show(&state.store, tenant, id).await.map_err(review_error)?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why; required to reject, and to approve a merge.
    pub note: Option<String>,
    /// Approve as a merge into this entity instead of the proposal.
    pub merge_into: Option<Uuid>,
}

/// Approve or reject one row.
#[utoipa::path(post, path = "/v1/review/{id}/{decision}", tag = "review",
    params(("id" = Uuid, Path, description = "Staged row id"), ("decision" = String, Path, description = "approve or reject")),
    request_body = Decision,
    responses((status = 200, description = "The row after the decision"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn decide(
    State(state): State<AppState>,
    auth: Auth,
    AppPath((id, decision)): AppPath<(Uuid, String)>,
    AppJson(body): AppJson<Decision>,
) -> ApiResult<Json<Value>> {
    let tenant = auth.require_scope(Scope::ReviewWrite)?;
    let by = auth.0.actor_ref();
    let note = body.note.as_deref();
    let row = match decision.as_str() {
        "approve" => review::approve(&state.store, tenant, id, body.merge_into, note, &by).await,
        "reject" if body.merge_into.is_some() => {
            return Err(ApiError::new(ErrorCode::InvalidRequest, "merge_into only goes with approve"));
        }
        "reject" => review::reject(&state.store, tenant, id, note, &by).await,
        other => return Err(ApiError::not_found(&format!("review decision {other:?} (use approve or reject)"))),
    };
    to_json(row.map_err(review_error)?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingEdit {
    /// The corrected proposal (same shape as the row's `proposal`).
    #[schema(value_type = Object)]
    pub proposal: Value,
    pub note: Option<String>,
}

/// Replace a row's mapping; the row is matched again and goes back to pending.
#[utoipa::path(put, path = "/v1/review/{id}/mapping", tag = "review", params(("id" = Uuid, Path, description = "Staged row id")),
    request_body = MappingEdit,
    responses((status = 200, description = "The row with its new proposal"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Uuid>,
    AppJson(body): AppJson<MappingEdit>,
) -> ApiResult<Json<Value>> {
    let tenant = auth.require_scope(Scope::ReviewWrite)?;
    let row = review::edit_mapping(&state.store, tenant, id, body.proposal, body.note.as_deref(), &auth.0.actor_ref())
        .await
        .map_err(review_error)?;
    to_json(row)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkApprove {
    /// Only rows proposed with this action (create, merge, skip).
    pub action: Option<String>,
    /// Required when merges are approved.
    pub note: Option<String>,
}

/// Approve every pending row of a batch that has a proposal.
#[utoipa::path(post, path = "/v1/batches/{id}/approve", tag = "review", params(("id" = Uuid, Path, description = "Import batch id")),
    request_body = BulkApprove,
    responses((status = 200, description = "How many rows were approved"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn bulk_approve(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Uuid>,
    AppJson(body): AppJson<BulkApprove>,
) -> ApiResult<Json<Value>> {
    let tenant = auth.require_scope(Scope::ReviewWrite)?;
    let ids = review::bulk_approve(
        &state.store,
        tenant,
        id,
        body.action.as_deref(),
        body.note.as_deref(),
        &auth.0.actor_ref(),
    )
    .await
    .map_err(review_error)?;
    to_json(json!({"approved": ids.len(), "rows": ids}))
}

/// Promote a batch's approved rows to canonical records (idempotent).
#[utoipa::path(post, path = "/v1/batches/{id}/promote", tag = "review", params(("id" = Uuid, Path, description = "Import batch id")),
    responses((status = 200, description = "What promotion wrote"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn promote(State(state): State<AppState>, auth: Auth, AppPath(id): AppPath<Uuid>) -> ApiResult<Json<Value>> {
    let tenant = auth.require_scope(Scope::ReviewWrite)?;
    let report = review::promote_batch(&state.store, tenant, id, &auth.0.actor_ref())
        .await
        .map_err(|e| not_found(e, "import batch"))?;
    to_json(report)
}
