//! `spine review …`, `spine promote`, `spine trace` and `spine profiles`: the review queue,
//! promotion and provenance from the command line, with the same rules as the API.

use clap::Subcommand;
use serde_json::json;
use spine_core::ids::TenantId;
use spine_pipeline::review::{self, ReviewError};
use spine_store::Store;
use spine_store::repos::review::{self as queue, ReviewFilter, ReviewRow};
use uuid::Uuid;

use crate::commands::ingest::resolve_tenant;
use crate::error::CliError;
use crate::output;

#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// List staged rows (default: pending ones).
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// Only this import batch.
        #[arg(long)]
        batch: Option<Uuid>,
        /// pending, approved, rejected, skipped, promoted, error, or `all`.
        #[arg(long, default_value = "pending")]
        status: String,
        /// Only rows proposed as create, merge or skip.
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One row: raw data, proposal, match evidence, decisions.
    Show {
        id: Uuid,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Approve a row (a merge needs --note).
    Approve {
        id: Uuid,
        #[arg(long)]
        tenant: Option<String>,
        /// Merge into this entity instead of the proposal.
        #[arg(long)]
        merge_into: Option<Uuid>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject a row (--note is required).
    Reject {
        id: Uuid,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Replace a row's mapping with the JSON given (same shape as its proposal).
    Edit {
        id: Uuid,
        #[arg(long)]
        tenant: Option<String>,
        /// The new proposal as JSON.
        #[arg(long)]
        proposal: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Approve every pending row of a batch that has a proposal (merges need --note).
    ApproveAll {
        batch: Uuid,
        #[arg(long)]
        tenant: Option<String>,
        /// Only rows proposed with this action.
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
}

fn who() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

fn rule(e: ReviewError) -> CliError {
    match e {
        ReviewError::Rule(m) => CliError::usage(m),
        ReviewError::Store(spine_store::StoreError::NotFound) => CliError::failed("no such staged row in this tenant"),
        ReviewError::Store(s) => s.into(),
    }
}

fn row_line(r: &ReviewRow) -> Vec<String> {
    let p = r.proposal.as_ref();
    let name = p
        .and_then(|p| p["person"]["full_name"].as_str().or(p["organization"]["name"].as_str()))
        .unwrap_or("-")
        .to_owned();
    let ids = p.and_then(|p| p["identifiers"].as_array()).map(|a| a.len()).unwrap_or(0);
    vec![
        r.id.to_string(),
        r.row_number.to_string(),
        r.review_status.clone(),
        r.proposed_action.clone().unwrap_or_else(|| "-".into()),
        name,
        ids.to_string(),
        r.target_entity_id.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
    ]
}

pub async fn run(store: &Store, cmd: ReviewCmd) -> Result<(), CliError> {
    let by = who();
    match cmd {
        ReviewCmd::List { tenant, batch, status, action, limit, json } => {
            let t = resolve_tenant(store, tenant.as_deref()).await?;
            let filter = ReviewFilter {
                import_batch_id: batch,
                status: (status != "all").then_some(status),
                action,
                after: None,
                limit,
            };
            let mut tx = store.tenant_tx(t).await?;
            let rows = queue::list(&mut tx, &filter).await?;
            tx.commit().await?;
            if json {
                output::json(&rows);
            } else {
                output::table(
                    &["ID", "ROW", "STATUS", "ACTION", "NAME", "IDENTIFIERS", "MERGE INTO"],
                    &rows.iter().map(row_line).collect::<Vec<_>>(),
                );
            }
        }
        ReviewCmd::Show { id, tenant } => {
            let t = resolve_tenant(store, tenant.as_deref()).await?;
            output::json(&review::show(store, t, id).await.map_err(rule)?);
        }
        ReviewCmd::Approve { id, tenant, merge_into, note } => {
            let t = resolve_tenant(store, tenant.as_deref()).await?;
            let row = review::approve(store, t, id, merge_into, note.as_deref(), &by).await.map_err(rule)?;
            output::text(&format!("row {} approved ({})", row.id, row.proposed_action.unwrap_or_default()));
        }
        ReviewCmd::Reject { id, tenant, note } => {
            let t = resolve_tenant(store, tenant.as_deref()).await?;
            let row = review::reject(store, t, id, note.as_deref(), &by).await.map_err(rule)?;
            output::text(&format!("row {} rejected", row.id));
        }
        ReviewCmd::Edit { id, tenant, proposal, note } => {
            let t = resolve_tenant(store, tenant.as_deref()).await?;
            let value =
                serde_json::from_str(&proposal).map_err(|e| CliError::usage(format!("--proposal is not JSON: {e}")))?;
            let row = review::edit_mapping(store, t, id, value, note.as_deref(), &by).await.map_err(rule)?;
            output::text(&format!("row {} re-proposed as {}", row.id, row.proposed_action.unwrap_or_default()));
        }
        ReviewCmd::ApproveAll { batch, tenant, action, note } => {
            let t = resolve_tenant(store, tenant.as_deref()).await?;
            let ids =
                review::bulk_approve(store, t, batch, action.as_deref(), note.as_deref(), &by).await.map_err(rule)?;
            output::text(&format!("{} rows approved", ids.len()));
        }
    }
    Ok(())
}

/// `spine promote BATCH`.
pub async fn promote(store: &Store, tenant: Option<&str>, batch: Uuid, json: bool) -> Result<(), CliError> {
    let t = resolve_tenant(store, tenant).await?;
    let report = review::promote_batch(store, t, batch, &who()).await.map_err(|e| match e {
        spine_store::StoreError::NotFound => CliError::failed(format!("no import batch {batch} in this tenant")),
        other => other.into(),
    })?;
    if json {
        output::json(&report);
    } else {
        output::text(&format!(
            "promoted {} rows: {} created, {} merged, {} skipped; {} identifiers, {} organizations, {} relationships, {} external ids added{}",
            report.rows,
            report.created,
            report.merged,
            report.skipped,
            report.identifiers_added,
            report.organizations_created,
            report.relationships_added,
            report.external_ids_added,
            if report.batch_done { "; batch done" } else { "; rows still wait for review" }
        ));
    }
    Ok(())
}

/// `spine trace ID`.
pub async fn trace(store: &Store, tenant: Option<&str>, id: Uuid, json: bool) -> Result<bool, CliError> {
    let t: TenantId = resolve_tenant(store, tenant).await?;
    let mut tx = store.tenant_tx(t).await?;
    let found = spine_store::repos::provenance::trace(&mut tx, id).await?;
    tx.commit().await?;
    let Some(trace) = found else {
        return Err(CliError::failed(format!(
            "{id} is not a record, file, batch, staged row or capture of this tenant"
        )));
    };
    if json {
        output::json(&trace);
        return Ok(true);
    }
    let empty = vec![];
    match trace["kind"].as_str() {
        Some("record") => {
            for o in trace["origins"].as_array().unwrap_or(&empty) {
                output::text(&format!(
                    "{} {} ({})\n  ← staged row {} (row {}) of batch {} [{}; profile {}]\n  ← file {} v{} {:?} ({}, {} bytes)\n  ← blob sha256:{}\n  ← captured {} via {} {} by {}{}",
                    o["record_table"].as_str().unwrap_or("?"),
                    o["record_id"].as_str().unwrap_or("?"),
                    o["link_role"].as_str().unwrap_or("?"),
                    o["import_row_id"].as_str().unwrap_or("?"),
                    o["row_number"],
                    o["import_batch_id"].as_str().unwrap_or("?"),
                    o["batch_status"].as_str().unwrap_or("?"),
                    o["profile"].as_str().unwrap_or("-"),
                    o["file_id"].as_str().unwrap_or("?"),
                    o["file_version"],
                    o["original_name"].as_str().unwrap_or("?"),
                    o["media_type"].as_str().unwrap_or("?"),
                    o["size_bytes"],
                    o["content_sha256"].as_str().unwrap_or("?"),
                    o["captured_at"].as_str().unwrap_or("?"),
                    o["ingress_kind"].as_str().unwrap_or("?"),
                    o["route"].as_str().unwrap_or("?"),
                    o["captured_by"].as_str().unwrap_or("?"),
                    o["device_id"].as_str().map(|d| format!(" (device {d})")).unwrap_or_default(),
                ));
            }
        }
        Some(kind) => {
            let derived = trace["derived"].as_array().unwrap_or(&empty);
            output::text(&format!("{kind} {id}: {} records derived", derived.len()));
            for d in derived {
                output::text(&format!(
                    "  v{} row {} → {} {} ({})",
                    d["file_version"],
                    d["row_number"],
                    d["record_table"].as_str().unwrap_or("?"),
                    d["record_id"].as_str().unwrap_or("?"),
                    d["link_role"].as_str().unwrap_or("?")
                ));
            }
        }
        None => {}
    }
    Ok(true)
}

/// `spine profiles`: the import profiles this build ships.
pub fn profiles(json: bool) {
    let all = spine_pipeline::profiles::builtin();
    if json {
        output::json(&all.iter().map(|p| json!({"name": p.name, "display_name": p.display_name})).collect::<Vec<_>>());
    } else {
        output::table(
            &["NAME", "DISPLAY NAME"],
            &all.iter().map(|p| vec![p.name.clone(), p.display_name.clone()]).collect::<Vec<_>>(),
        );
    }
}
