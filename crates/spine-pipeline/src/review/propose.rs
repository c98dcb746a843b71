//! Proposals: each staged row of a batch is mapped by the batch's import profile and matched
//! against canonical identifiers and external ids. No match → `create`; a match → `merge` into the
//! entity most of the row's keys point to (`exact` when all of them point to that one entity);
//! nothing usable → `skip`. The tenant's policy may then approve exact matches.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use spine_store::repos::processing::{self, ImportFile};
use spine_store::repos::review::{self, KeyMatch, ProposalUpdate};
use spine_store::{StoreError, TenantTx};
use uuid::Uuid;

use crate::profiles::{self, MapOptions, MappedContact, Profile};

const PAGE: i64 = 1000;

/// (kind, normalized value) of an identifier, or (system, id) of an external id.
type Key = (String, String);

/// The keys a mapped row can be matched by: identifiers and external ids.
pub fn match_keys(m: &MappedContact) -> (Vec<Key>, Vec<Key>) {
    let ids = m.identifiers.iter().map(|i| (i.kind.as_str().to_owned(), i.normalized.clone())).collect();
    let ext = m.external_id.iter().map(|x| (x.source_system.clone(), x.external_id.clone())).collect();
    (ids, ext)
}

/// Decides the action for one mapped row from the matches found for its keys.
pub fn decide(m: &MappedContact, matches: &[KeyMatch]) -> (&'static str, Option<Uuid>, Value) {
    if m.is_empty() {
        return ("skip", None, json!({"reason": "no name, organization or identifier to promote"}));
    }
    if matches.is_empty() {
        return ("create", None, json!({"matches": [], "exact": false}));
    }
    let mut votes: BTreeMap<Uuid, usize> = BTreeMap::new();
    for k in matches {
        *votes.entry(k.entity_id).or_default() += 1;
    }
    let (target, _) =
        votes.iter().max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id))).map(|(i, n)| (*i, *n)).unwrap_or_default();
    let ambiguous = votes.len() > 1;
    (
        "merge",
        Some(target),
        json!({"matches": matches, "exact": !ambiguous, "ambiguous": ambiguous, "candidates": votes.keys().collect::<Vec<_>>()}),
    )
}

/// Matches for one row's keys among `all` (the page's matches).
fn matches_for(m: &MappedContact, all: &[KeyMatch]) -> Vec<KeyMatch> {
    let (ids, ext) = match_keys(m);
    all.iter()
        .filter(|k| {
            ids.iter().any(|(kind, v)| k.kind == *kind && k.value == *v)
                || ext.iter().any(|(sys, v)| k.kind == format!("external_id:{sys}") && k.value == *v)
        })
        .cloned()
        .collect()
}

/// Looks up the matches of a set of mapped rows in one query per key kind.
pub async fn find_matches(tx: &mut TenantTx, rows: &[&MappedContact]) -> Result<Vec<KeyMatch>, StoreError> {
    let mut ids = Vec::new();
    let mut ext = Vec::new();
    for m in rows {
        let (i, e) = match_keys(m);
        ids.extend(i);
        ext.extend(e);
    }
    ids.sort();
    ids.dedup();
    ext.sort();
    ext.dedup();
    let mut found = review::match_identifiers(tx, &ids).await?;
    found.extend(review::match_external_ids(tx, &ext).await?);
    Ok(found)
}

/// The profile for a batch: the forced one, else the best match for the header (recorded on the
/// batch). `None` when no profile fits: rows stay staged without proposals.
fn choose_profile(file: &ImportFile, header: &[String]) -> Option<&'static Profile> {
    match &file.profile {
        Some(name) => profiles::by_name(name),
        None => profiles::detect(header).map(|d| d.profile),
    }
}

/// Maps and proposes every parsed row of the batch, then applies the tenant's auto-approval
/// policy. Records what it did in the batch summary under `review`.
pub async fn propose_batch(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    file: &ImportFile,
    header: &[String],
) -> Result<(), StoreError> {
    let Some(profile) = choose_profile(file, header) else {
        record_summary(tx, import_batch_id, json!({"profile": null, "reason": "no import profile matches the header"}))
            .await?;
        return Ok(());
    };
    processing::set_batch_profile(tx, import_batch_id, &profile.name).await?;
    let opts = MapOptions::default();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = review::payload_page(tx, import_batch_id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.row_number;
        let mapped: Vec<MappedContact> = page
            .iter()
            .map(|r| match &r.raw_payload {
                Value::Object(obj) => profile.map_row(obj, &opts),
                _ => MappedContact::default(),
            })
            .collect();
        let refs: Vec<&MappedContact> = mapped.iter().collect();
        let matches = find_matches(tx, &refs).await?;
        let updates: Vec<ProposalUpdate> = page
            .iter()
            .zip(&mapped)
            .map(|(row, m)| {
                let (action, target, evidence) = decide(m, &matches_for(m, &matches));
                *counts.entry(action).or_default() += 1;
                ProposalUpdate {
                    row_id: row.id,
                    profile: profile.name.clone(),
                    action,
                    proposal: serde_json::to_value(m).unwrap_or(Value::Null),
                    evidence,
                    target_entity_id: target,
                }
            })
            .collect();
        review::set_proposals(tx, &updates).await?;
    }
    let auto = review::auto_approve_exact(tx, import_batch_id).await?;
    record_summary(tx, import_batch_id, json!({"profile": profile.name, "proposed": counts, "auto_approved": auto}))
        .await
}

async fn record_summary(tx: &mut TenantTx, import_batch_id: Uuid, summary: Value) -> Result<(), StoreError> {
    processing::merge_batch_summary(tx, import_batch_id, "review", &summary).await
}
