//! Review and promotion of staged rows (issue 4 item 8): proposals made when a file is processed,
//! the reviewer's decisions (with the rules on notes), and promotion to canonical tables.
//! The API and the CLI both call these, so the rules hold whichever way a decision arrives.

mod promote;
pub mod propose;

use serde_json::Value;
use spine_core::ids::TenantId;
use spine_store::repos::review::{self, Decide, Decision, ReviewRow};
use spine_store::{Store, StoreError};
use thiserror::Error;
use uuid::Uuid;

use crate::profiles::MappedContact;

pub use promote::{PromoteReport, promote_batch};

#[derive(Debug, Error)]
pub enum ReviewError {
    /// The request breaks a review rule (a missing note, a bad mapping).
    #[error("{0}")]
    Rule(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn need_note(note: Option<&str>, what: &str) -> Result<(), ReviewError> {
    match note.map(str::trim) {
        Some(n) if !n.is_empty() => Ok(()),
        _ => Err(ReviewError::Rule(format!("{what} needs a note saying why (--note / \"note\")"))),
    }
}

/// A row with its decision history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowDetail {
    #[serde(flatten)]
    pub row: ReviewRow,
    pub decisions: Vec<Decision>,
}

pub async fn show(store: &Store, tenant: TenantId, id: Uuid) -> Result<RowDetail, ReviewError> {
    let mut tx = store.tenant_tx(tenant).await?;
    let row = review::get(&mut tx, id).await?;
    let decisions = review::decisions(&mut tx, id).await?;
    Ok(RowDetail { row, decisions })
}

/// Approves a row. Merging (the proposal's merge, or `merge_into` an entity the reviewer chose)
/// needs a note.
pub async fn approve(
    store: &Store,
    tenant: TenantId,
    id: Uuid,
    merge_into: Option<Uuid>,
    note: Option<&str>,
    by: &str,
) -> Result<ReviewRow, ReviewError> {
    let mut tx = store.tenant_tx(tenant).await?;
    let current = review::get(&mut tx, id).await?;
    if current.proposed_action.is_none() {
        return Err(ReviewError::Rule(format!(
            "row {id} has no proposal (no import profile mapped it{}); edit its mapping first",
            current.parse_error.as_ref().map(|_| ", and it did not parse").unwrap_or_default()
        )));
    }
    if merge_into.is_some() || current.proposed_action.as_deref() == Some("merge") {
        need_note(note, "a merge")?;
    }
    let row =
        review::decide(&mut tx, id, &Decide { decision: "approve", note, by, merge_into, proposal: None }).await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn reject(
    store: &Store,
    tenant: TenantId,
    id: Uuid,
    note: Option<&str>,
    by: &str,
) -> Result<ReviewRow, ReviewError> {
    need_note(note, "rejecting a row")?;
    let mut tx = store.tenant_tx(tenant).await?;
    let row =
        review::decide(&mut tx, id, &Decide { decision: "reject", note, by, merge_into: None, proposal: None }).await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces a row's mapping (the proposal) with an edited one, re-matches it and puts it back
/// in the queue as pending.
pub async fn edit_mapping(
    store: &Store,
    tenant: TenantId,
    id: Uuid,
    proposal: Value,
    note: Option<&str>,
    by: &str,
) -> Result<ReviewRow, ReviewError> {
    let mapped: MappedContact = serde_json::from_value(proposal)
        .map_err(|e| ReviewError::Rule(format!("the mapping does not have the proposal's shape: {e}")))?;
    let mut tx = store.tenant_tx(tenant).await?;
    let matches = propose::find_matches(&mut tx, &[&mapped]).await?;
    let (action, target, evidence) = propose::decide(&mapped, &matches);
    let value = serde_json::to_value(&mapped).map_err(|e| ReviewError::Rule(e.to_string()))?;
    let row = review::decide(
        &mut tx,
        id,
        &Decide { decision: "edit", note, by, merge_into: None, proposal: Some(value.clone()) },
    )
    .await?;
    review::reset_proposal(&mut tx, id, action, &value, &evidence, target).await?;
    let row = review::get(&mut tx, row.id).await?;
    tx.commit().await?;
    Ok(row)
}

/// Approves every pending row with a proposal in the batch (optionally one action only).
/// Approving merges in bulk needs a note.
pub async fn bulk_approve(
    store: &Store,
    tenant: TenantId,
    import_batch_id: Uuid,
    action: Option<&str>,
    note: Option<&str>,
    by: &str,
) -> Result<Vec<Uuid>, ReviewError> {
    if let Some(a) = action
        && !matches!(a, "create" | "merge" | "skip")
    {
        return Err(ReviewError::Rule(format!("action must be create, merge or skip, not {a:?}")));
    }
    let mut tx = store.tenant_tx(tenant).await?;
    if action != Some("create")
        && action != Some("skip")
        && review::has_pending_merges(&mut tx, import_batch_id).await?
    {
        need_note(note, "approving merges")?;
    }
    let ids = review::bulk_approve(&mut tx, import_batch_id, action, note, by).await?;
    tx.commit().await?;
    Ok(ids)
}
