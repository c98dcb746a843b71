//! Promotion: approved rows of a batch become canonical records — people, organizations,
//! identifiers, works-at relationships, external ids — with provenance links back to their staged
//! row, all in one transaction. Idempotent: keys are matched again at promotion time (so a row
//! that would create a person merges into the one an earlier row or batch created), and every
//! write skips what already exists.

use serde::Serialize;
use spine_core::ids::TenantId;
use spine_store::repos::promotion::{self as canon, PersonRow, Provenance};
use spine_store::repos::review::{self, ReviewFilter, ReviewRow};
use spine_store::{Store, StoreError, TenantTx};
use uuid::Uuid;

use super::propose::{decide, find_matches};
use crate::profiles::MappedContact;

/// What a promotion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PromoteReport {
    pub rows: u64,
    pub created: u64,
    pub merged: u64,
    pub skipped: u64,
    pub identifiers_added: u64,
    pub organizations_created: u64,
    pub relationships_added: u64,
    pub external_ids_added: u64,
    /// True when no row of the batch waits any more (the batch is `promoted`).
    pub batch_done: bool,
}

/// Promotes the batch's approved rows in one transaction.
pub async fn promote_batch(
    store: &Store,
    tenant: TenantId,
    import_batch_id: Uuid,
    by: &str,
) -> Result<PromoteReport, StoreError> {
    let mut tx = store.tenant_tx(tenant).await?;
    canon::lock_batch(&mut tx, import_batch_id).await?;
    let (file_id, version) = canon::batch_file(&mut tx, import_batch_id).await?;
    let mut report = PromoteReport::default();
    loop {
        // Promoted rows leave the `approved` set, so the first page is always the next one.
        let filter = ReviewFilter {
            import_batch_id: Some(import_batch_id),
            status: Some("approved".into()),
            limit: 500,
            ..Default::default()
        };
        let rows = review::list(&mut tx, &filter).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let p = Provenance {
                source_system: row.profile.clone().unwrap_or_else(|| "import".into()),
                source_file_id: file_id,
                file_version: version,
                import_batch_id,
                import_row_id: row.id,
                by: by.to_owned(),
            };
            promote_row(&mut tx, &row, &p, &mut report).await?;
        }
    }
    report.batch_done = canon::close_batch_if_done(&mut tx, import_batch_id).await?;
    tx.commit().await?;
    Ok(report)
}

async fn promote_row(
    tx: &mut TenantTx,
    row: &ReviewRow,
    p: &Provenance,
    report: &mut PromoteReport,
) -> Result<(), StoreError> {
    report.rows += 1;
    let mapped: MappedContact = row
        .proposal
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| StoreError::Invalid(format!("row {} has no valid proposal; edit its mapping", row.id)))?;
    if row.proposed_action.as_deref() == Some("skip") || mapped.is_empty() {
        canon::mark_promoted(tx, row.id, None).await?;
        report.skipped += 1;
        return review::record_decision(tx, row, "promote", None, &serde_json::json!({"skipped": true}), &p.by).await;
    }
    let expected_kind = if mapped.person.is_some() { "person" } else { "organization" };
    let target = merge_target(tx, row, &mapped, expected_kind).await?;
    let entity = match (&mapped.person, target) {
        (Some(person), Some(id)) => {
            canon::fill_person(tx, id, &person_row(person), &p.by).await?;
            canon::link(tx, "core.people", id, "merged", p).await?;
            report.merged += 1;
            id
        }
        (Some(person), None) => {
            let id = canon::create_person(tx, &person_row(person), p).await?;
            canon::link(tx, "core.people", id, "created", p).await?;
            report.created += 1;
            id
        }
        (None, Some(id)) => {
            canon::link(tx, "core.organizations", id, "merged", p).await?;
            report.merged += 1;
            id
        }
        (None, None) => {
            let name = mapped.organization.as_ref().map(|o| o.name.as_str()).unwrap_or_default();
            let (id, created) = canon::ensure_organization(tx, name, p).await?;
            canon::link(tx, "core.organizations", id, if created { "created" } else { "merged" }, p).await?;
            if created {
                report.created += 1;
                report.organizations_created += 1;
            } else {
                report.merged += 1;
            }
            id
        }
    };
    if mapped.person.is_some()
        && let Some(org) = &mapped.organization
    {
        let (org_id, created) = canon::ensure_organization(tx, &org.name, p).await?;
        if created {
            report.organizations_created += 1;
            canon::link(tx, "core.organizations", org_id, "created", p).await?;
        }
        let notes = mapped.job_title.as_ref().map(|t| format!("Title: {t}"));
        if let Some(rel) = canon::ensure_relationship(tx, entity, org_id, "works_at", notes.as_deref(), p).await? {
            report.relationships_added += 1;
            canon::link(tx, "core.relationships", rel, "relationship", p).await?;
        }
    }
    for i in &mapped.identifiers {
        let added = canon::add_identifier(
            tx,
            entity,
            i.kind.as_str(),
            &i.value,
            &i.normalized,
            i.label.as_deref(),
            i.is_primary,
            p,
        )
        .await?;
        if let Some(id) = added {
            report.identifiers_added += 1;
            canon::link(tx, "core.identifiers", id, "identifier", p).await?;
        }
    }
    if let Some(x) = &mapped.external_id
        && let Some(id) = canon::add_external_id(tx, entity, &x.source_system, &x.external_id, p).await?
    {
        report.external_ids_added += 1;
        canon::link(tx, "qiconnect.external_ids", id, "external_id", p).await?;
    }
    canon::mark_promoted(tx, row.id, Some(entity)).await?;
    review::record_decision(tx, row, "promote", None, &serde_json::json!({"entity_id": entity}), &p.by).await
}

/// The entity a row merges into: the reviewer's or proposal's target when it is still an active
/// entity of the right kind, else whatever the row's keys match now (rows promoted earlier in
/// this batch included), else none (create).
async fn merge_target(
    tx: &mut TenantTx,
    row: &ReviewRow,
    mapped: &MappedContact,
    kind: &str,
) -> Result<Option<Uuid>, StoreError> {
    if let Some(t) = row.target_entity_id
        && canon::entity_kind(tx, t).await?.as_deref() == Some(kind)
    {
        return Ok(Some(t));
    }
    let matches = find_matches(tx, &[mapped]).await?;
    let (_, target, _) = decide(mapped, &matches);
    Ok(match target {
        Some(t) if canon::entity_kind(tx, t).await?.as_deref() == Some(kind) => Some(t),
        _ => None,
    })
}

fn person_row(p: &crate::profiles::PersonFields) -> PersonRow {
    PersonRow {
        given_name: p.given_name.clone(),
        middle_name: p.middle_name.clone(),
        family_name: p.family_name.clone(),
        full_name: p.full_name.clone(),
        nickname: p.nickname.clone(),
        birth_date: p.birth_date,
        notes: p.notes.clone(),
    }
}
