//! `spine schedules …`: cron schedules, as the operator (all tenants).

use serde_json::json;
use spine_core::ids::TenantId;
use spine_store::Store;
use spine_store::queue::schedules::{self, NewSchedule, ScheduleRow};
use uuid::Uuid;

use crate::cli::SchedulesCmd;
use crate::error::CliError;
use crate::output;

async fn tenant_id(store: &Store, t: &str) -> Result<TenantId, CliError> {
    Ok(TenantId(crate::commands::admin::find_tenant(store, t).await?.id))
}

fn schedule_id(id: &str) -> Result<Uuid, CliError> {
    Uuid::parse_str(id).map_err(|_| CliError::usage(format!("{id:?} is not a schedule id (a UUID)")))
}

fn row_json(r: &ScheduleRow) -> serde_json::Value {
    json!({"id": r.id, "tenant_id": r.tenant_id, "name": r.name, "kind": r.kind, "payload": r.payload,
           "cron_expression": r.cron_expression, "timezone": r.timezone, "enabled": r.enabled, "catch_up": r.catch_up,
           "next_run_at": r.next_run_at, "last_run_at": r.last_run_at, "last_job_id": r.last_job_id})
}

pub async fn run(store: &Store, cmd: SchedulesCmd) -> Result<(), CliError> {
    let not_found = |id: Uuid| move |_| CliError::failed(format!("no schedule {id}"));
    match cmd {
        SchedulesCmd::List { tenant, json } => {
            let tenant = match tenant {
                Some(t) => Some(tenant_id(store, &t).await?),
                None => None,
            };
            let mut tx = store.system_tx().await?;
            let rows = schedules::list(tx.conn(), tenant).await?;
            tx.commit().await?;
            if json {
                output::json(&rows.iter().map(row_json).collect::<Vec<_>>());
            } else {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.name.clone(),
                            r.kind.clone(),
                            format!("{} ({})", r.cron_expression, r.timezone),
                            if r.enabled { "enabled".into() } else { "paused".into() },
                            r.next_run_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "KIND", "CRON", "STATE", "NEXT_RUN_AT"], &rows);
            }
        }
        SchedulesCmd::Create { tenant, name, kind, cron, timezone, payload, catch_up, json } => {
            let tenant = tenant_id(store, &tenant).await?;
            let mut new = NewSchedule::new(tenant, name, kind, cron);
            new.timezone = timezone;
            new.payload =
                serde_json::from_str(&payload).map_err(|e| CliError::usage(format!("--payload is not JSON: {e}")))?;
            new.catch_up =
                catch_up.parse().map_err(|e: spine_core::names::InvalidValue| CliError::usage(e.to_string()))?;
            new.created_by = Some("system:cli".into());
            let mut tx = store.system_tx().await?;
            let row = schedules::create(tx.conn(), &new).await?;
            tx.commit().await?;
            if json {
                output::json(&row_json(&row));
            } else {
                let next = row.next_run_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
                output::text(&format!("created schedule {} ({}); next run {next}", row.id, row.name));
            }
        }
        SchedulesCmd::Pause { id } => {
            let id = schedule_id(&id)?;
            let mut tx = store.system_tx().await?;
            schedules::set_enabled(tx.conn(), id, false).await.map_err(not_found(id))?;
            tx.commit().await?;
            output::text(&format!("paused schedule {id}"));
        }
        SchedulesCmd::Resume { id } => {
            let id = schedule_id(&id)?;
            let mut tx = store.system_tx().await?;
            let row = schedules::set_enabled(tx.conn(), id, true).await.map_err(not_found(id))?;
            tx.commit().await?;
            let next = row.next_run_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
            output::text(&format!("resumed schedule {id}; next run {next}"));
        }
        SchedulesCmd::Trigger { id } => {
            let id = schedule_id(&id)?;
            let mut tx = store.system_tx().await?;
            let job = schedules::trigger_now(tx.conn(), id).await.map_err(not_found(id))?;
            tx.commit().await?;
            output::text(&format!("enqueued job {} for schedule {id}", job.id()));
        }
        SchedulesCmd::Delete { id } => {
            let id = schedule_id(&id)?;
            let mut tx = store.system_tx().await?;
            schedules::delete(tx.conn(), id).await.map_err(not_found(id))?;
            tx.commit().await?;
            output::text(&format!("deleted schedule {id}"));
        }
    }
    Ok(())
}
