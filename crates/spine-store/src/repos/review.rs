//! The review queue over staged rows: proposals, matches against canonical identifiers, and the
//! decisions reviewers (or the tenant's policy) take. Every decision is kept in
//! qinexus.review_decisions with who and when.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{StoreError, TenantTx};

/// A staged row's payload, for mapping.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StagedPayload {
    pub id: Uuid,
    pub row_number: i32,
    pub raw_payload: Value,
}

/// Parsed rows of a batch after `after_row` in row order, at most `limit`.
pub async fn payload_page(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    after_row: i32,
    limit: i64,
) -> Result<Vec<StagedPayload>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, row_number, raw_payload FROM staging.import_rows \
         WHERE import_batch_id = $1 AND row_number > $2 AND raw_payload IS NOT NULL \
         ORDER BY row_number LIMIT $3",
    )
    .bind(import_batch_id)
    .bind(after_row)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}

/// An existing active entity holding one of the looked-up keys.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct KeyMatch {
    /// `email`, `phone`, `url`, … or `external_id:<system>`.
    pub kind: String,
    pub value: String,
    pub entity_id: Uuid,
}

/// Active entities holding any of the (kind, normalized value) identifiers.
pub async fn match_identifiers(tx: &mut TenantTx, keys: &[(String, String)]) -> Result<Vec<KeyMatch>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (kinds, values): (Vec<&str>, Vec<&str>) = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
    Ok(sqlx::query_as(
        "SELECT DISTINCT i.identifier_kind AS kind, i.normalized_value AS value, i.entity_id \
         FROM unnest($1::text[], $2::text[]) AS k(kind, value) \
         JOIN core.identifiers i ON i.identifier_kind = k.kind AND i.normalized_value = k.value \
         JOIN core.entities e ON e.id = i.entity_id AND e.status = 'active' \
         WHERE i.status = 'active'",
    )
    .bind(&kinds)
    .bind(&values)
    .fetch_all(tx.conn())
    .await?)
}

/// Active entities known under any of the (system, external id) pairs.
pub async fn match_external_ids(tx: &mut TenantTx, keys: &[(String, String)]) -> Result<Vec<KeyMatch>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (systems, ids): (Vec<&str>, Vec<&str>) = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
    Ok(sqlx::query_as(
        "SELECT DISTINCT 'external_id:' || x.external_system AS kind, x.external_id AS value, x.entity_id \
         FROM unnest($1::text[], $2::text[]) AS k(system, id) \
         JOIN qiconnect.external_ids x ON x.external_system = k.system AND x.external_id = k.id \
         JOIN core.entities e ON e.id = x.entity_id AND e.status = 'active'",
    )
    .bind(&systems)
    .bind(&ids)
    .fetch_all(tx.conn())
    .await?)
}

/// A proposal for one staged row.
#[derive(Debug, Clone)]
pub struct ProposalUpdate {
    pub row_id: Uuid,
    pub profile: String,
    /// `create`, `merge` or `skip`.
    pub action: &'static str,
    pub proposal: Value,
    pub evidence: Value,
    pub target_entity_id: Option<Uuid>,
}

/// Writes proposals (one statement for the lot). Rows already decided keep their decision.
pub async fn set_proposals(tx: &mut TenantTx, updates: &[ProposalUpdate]) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = updates.iter().map(|u| u.row_id).collect();
    let profiles: Vec<&str> = updates.iter().map(|u| u.profile.as_str()).collect();
    let actions: Vec<&str> = updates.iter().map(|u| u.action).collect();
    let proposals: Vec<Json<&Value>> = updates.iter().map(|u| Json(&u.proposal)).collect();
    let evidence: Vec<Json<&Value>> = updates.iter().map(|u| Json(&u.evidence)).collect();
    let targets: Vec<Option<Uuid>> = updates.iter().map(|u| u.target_entity_id).collect();
    sqlx::query(
        "UPDATE staging.import_rows r SET profile = u.profile, proposed_action = u.action, proposal = u.proposal, \
                match_evidence = u.evidence, target_entity_id = u.target \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::uuid[]) \
              AS u(id, profile, action, proposal, evidence, target) \
         WHERE r.id = u.id AND r.review_status = 'pending'",
    )
    .bind(&ids)
    .bind(&profiles)
    .bind(&actions)
    .bind(&proposals)
    .bind(&evidence)
    .bind(&targets)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Approves the batch's pending exact-match merges when the tenant's policy says so; returns how
/// many rows it approved.
pub async fn auto_approve_exact(tx: &mut TenantTx, import_batch_id: Uuid) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "WITH approved AS ( \
             UPDATE staging.import_rows r SET review_status = 'approved', decided_by = 'policy:auto_approve', \
                    decided_at = now(), decision_note = 'exact match (tenant policy auto_approve_exact_matches)' \
             WHERE r.import_batch_id = $1 AND r.review_status = 'pending' AND r.proposed_action = 'merge' \
               AND (r.match_evidence ->> 'exact')::boolean \
               AND (SELECT auto_approve_exact_matches FROM core.tenants WHERE id = r.tenant_id) \
             RETURNING r.id, r.tenant_id, r.import_batch_id, r.target_entity_id) \
         INSERT INTO qinexus.review_decisions (tenant_id, import_row_id, import_batch_id, decision, note, details, decided_by) \
         SELECT tenant_id, id, import_batch_id, 'auto_approve', 'exact match', \
                jsonb_build_object('merge_into', target_entity_id), 'policy:auto_approve' FROM approved",
    )
    .bind(import_batch_id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// One row of the review queue.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct ReviewRow {
    pub id: Uuid,
    pub import_batch_id: Uuid,
    pub source_file_id: Uuid,
    pub row_number: i32,
    pub review_status: String,
    pub profile: Option<String>,
    pub proposed_action: Option<String>,
    pub proposal: Option<Value>,
    pub match_evidence: Option<Value>,
    pub target_entity_id: Option<Uuid>,
    pub promoted_entity_id: Option<Uuid>,
    pub raw_payload: Option<Value>,
    pub raw_text: Option<String>,
    pub parse_error: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ROW_COLUMNS: &str = "id, import_batch_id, source_file_id, row_number, review_status, profile, proposed_action, \
     proposal, match_evidence, target_entity_id, promoted_entity_id, raw_payload, raw_text, parse_error, decided_by, \
     decided_at, decision_note, created_at";

/// Which rows to list.
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    pub import_batch_id: Option<Uuid>,
    pub status: Option<String>,
    pub action: Option<String>,
    /// Rows after this (batch, row number) position, for paging.
    pub after: Option<(Uuid, i32)>,
    pub limit: i64,
}

pub async fn list(tx: &mut TenantTx, f: &ReviewFilter) -> Result<Vec<ReviewRow>, StoreError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM staging.import_rows \
         WHERE ($1::uuid IS NULL OR import_batch_id = $1) AND ($2::text IS NULL OR review_status = $2) \
           AND ($3::text IS NULL OR proposed_action = $3) \
           AND ($4::uuid IS NULL OR (import_batch_id, row_number) > ($4, $5)) \
         ORDER BY import_batch_id, row_number LIMIT $6"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(f.import_batch_id)
        .bind(&f.status)
        .bind(&f.action)
        .bind(f.after.map(|a| a.0))
        .bind(f.after.map(|a| a.1).unwrap_or(0))
        .bind(f.limit.clamp(1, 1000))
        .fetch_all(tx.conn())
        .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<ReviewRow, StoreError> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM staging.import_rows WHERE id = $1");
    sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(tx.conn()).await?.ok_or(StoreError::NotFound)
}

/// One recorded decision.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Decision {
    pub decision: String,
    pub note: Option<String>,
    pub details: Value,
    pub decided_by: String,
    pub created_at: DateTime<Utc>,
}

pub async fn decisions(tx: &mut TenantTx, row_id: Uuid) -> Result<Vec<Decision>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT decision, note, details, decided_by, created_at FROM qinexus.review_decisions \
         WHERE import_row_id = $1 ORDER BY created_at, id",
    )
    .bind(row_id)
    .fetch_all(tx.conn())
    .await?)
}

/// A reviewer's decision on one row.
#[derive(Debug, Clone)]
pub struct Decide<'a> {
    /// `approve`, `reject` or `edit`.
    pub decision: &'static str,
    pub note: Option<&'a str>,
    pub by: &'a str,
    /// For approve: merge into this entity instead of the proposal's target.
    pub merge_into: Option<Uuid>,
    /// For edit: the new proposal (already validated by the caller).
    pub proposal: Option<Value>,
}

/// Applies a decision to a row that is not promoted yet, records it, and returns the row.
pub async fn decide(tx: &mut TenantTx, id: Uuid, d: &Decide<'_>) -> Result<ReviewRow, StoreError> {
    let current = get(tx, id).await?;
    if matches!(current.review_status.as_str(), "promoted" | "error") {
        return Err(StoreError::Conflict(format!(
            "row {id} is {} and can no longer be decided",
            current.review_status
        )));
    }
    let status = match d.decision {
        "approve" => "approved",
        "reject" => "rejected",
        _ => "pending",
    };
    let action = match (d.decision, d.merge_into) {
        ("approve", Some(_)) => Some("merge"),
        _ => None,
    };
    let sql = format!(
        "UPDATE staging.import_rows SET review_status = $2, decided_by = $3, decided_at = now(), decision_note = $4, \
                target_entity_id = coalesce($5, target_entity_id), proposed_action = coalesce($6, proposed_action), \
                proposal = coalesce($7, proposal) \
         WHERE id = $1 RETURNING {ROW_COLUMNS}"
    );
    let row: ReviewRow = sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .bind(status)
        .bind(d.by)
        .bind(d.note)
        .bind(d.merge_into)
        .bind(action)
        .bind(d.proposal.as_ref().map(Json))
        .fetch_one(tx.conn())
        .await?;
    let details = serde_json::json!({"merge_into": d.merge_into, "proposal": d.proposal});
    record_decision(tx, &row, d.decision, d.note, &details, d.by).await?;
    Ok(row)
}

/// Approves every pending row of a batch with a proposal (optionally only one action); returns
/// the approved rows' ids.
pub async fn bulk_approve(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    action: Option<&str>,
    note: Option<&str>,
    by: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "WITH approved AS ( \
             UPDATE staging.import_rows SET review_status = 'approved', decided_by = $4, decided_at = now(), decision_note = $3 \
             WHERE import_batch_id = $1 AND review_status = 'pending' AND proposed_action IS NOT NULL \
               AND ($2::text IS NULL OR proposed_action = $2) \
             RETURNING id, tenant_id, import_batch_id), \
         logged AS ( \
             INSERT INTO qinexus.review_decisions (tenant_id, import_row_id, import_batch_id, decision, note, details, decided_by) \
             SELECT tenant_id, id, import_batch_id, 'approve', $3, '{\"bulk\": true}', $4 FROM approved) \
         SELECT id FROM approved",
    )
    .bind(import_batch_id)
    .bind(action)
    .bind(note)
    .bind(by)
    .fetch_all(tx.conn())
    .await?;
    Ok(ids)
}

pub async fn record_decision(
    tx: &mut TenantTx,
    row: &ReviewRow,
    decision: &str,
    note: Option<&str>,
    details: &Value,
    by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO qinexus.review_decisions (tenant_id, import_row_id, import_batch_id, decision, note, details, decided_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tx.tenant().as_uuid())
    .bind(row.id)
    .bind(row.import_batch_id)
    .bind(decision)
    .bind(note)
    .bind(Json(details))
    .bind(by)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets a row's action, evidence and target after its mapping was edited.
pub async fn reset_proposal(
    tx: &mut TenantTx,
    id: Uuid,
    action: &str,
    proposal: &Value,
    evidence: &Value,
    target: Option<Uuid>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE staging.import_rows SET proposed_action = $2, proposal = $3, match_evidence = $4, target_entity_id = $5 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(action)
    .bind(Json(proposal))
    .bind(Json(evidence))
    .bind(target)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// True when the batch has pending rows proposed as merges.
pub async fn has_pending_merges(tx: &mut TenantTx, import_batch_id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM staging.import_rows WHERE import_batch_id = $1 AND review_status = 'pending' \
                        AND proposed_action = 'merge')",
    )
    .bind(import_batch_id)
    .fetch_one(tx.conn())
    .await?)
}
