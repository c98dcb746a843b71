//! `spine jobs …`: the operator's view of the queue across tenants.

use chrono::{Duration, Utc};
use serde_json::json;
use spine_core::ids::TenantId;
use spine_core::jobs::JobState;
use spine_store::Store;
use spine_store::queue::{self, Enqueued, JobFilter, JobRow, NewJob};
use uuid::Uuid;

use crate::cli::{EnqueueArgs, JobActionArgs, JobSelect, JobsCmd};
use crate::error::CliError;
use crate::output;

async fn filter(store: &Store, s: &JobSelect) -> Result<JobFilter, CliError> {
    let tenant = match &s.tenant {
        Some(t) => {
            let mut tx = store.system_tx().await?;
            let found = spine_store::repos::tenants::find(&mut tx, t).await.map_err(|_| {
                CliError::failed(format!("no tenant {t:?}")).hint("list tenants with `spine tenant list`")
            })?;
            tx.commit().await?;
            Some(found.id)
        }
        None => None,
    };
    let state = s.state.as_deref().map(str::parse::<JobState>).transpose().map_err(CliError::usage)?;
    if s.older_than.is_some_and(|x| x < 0) {
        return Err(CliError::usage("--older-than must not be negative"));
    }
    Ok(JobFilter {
        ids: None,
        tenant,
        state,
        kind: s.kind.clone(),
        created_before: s.older_than.map(|x| Utc::now() - Duration::seconds(x)),
        limit: s.limit,
    })
}

fn job_json(j: &JobRow) -> serde_json::Value {
    json!({
        "id": j.id, "tenant_id": j.tenant_id, "kind": j.kind, "state": j.state, "attempts": j.attempts,
        "max_attempts": j.max_attempts, "run_at": j.run_at, "last_error_class": j.last_error_class,
        "last_error_message": j.last_error_message, "payload": j.payload, "dedupe_key": j.dedupe_key,
        "parent_job_id": j.parent_job_id, "children": {"total": j.children_total, "succeeded": j.children_succeeded,
        "failed": j.children_failed}, "created_at": j.created_at, "started_at": j.started_at, "finished_at": j.finished_at,
    })
}

fn parse_id(id: &str) -> Result<Uuid, CliError> {
    Uuid::parse_str(id).map_err(|_| CliError::usage(format!("{id:?} is not a job id (a UUID)")))
}

async fn enqueue(store: &Store, a: EnqueueArgs) -> Result<(), CliError> {
    let payload: serde_json::Value =
        serde_json::from_str(&a.payload).map_err(|e| CliError::usage(format!("--payload is not JSON: {e}")))?;
    if !payload.is_object() {
        return Err(CliError::usage("--payload must be a JSON object"));
    }
    let known = spine_pipeline::builtin::handlers().kinds();
    if !known.contains(&a.kind) {
        return Err(CliError::usage(format!("no handler for kind {:?}; known kinds: {}", a.kind, known.join(", "))));
    }
    if !(1..=1000).contains(&a.max_attempts) {
        return Err(CliError::usage("--max-attempts must be between 1 and 1000"));
    }
    let tenant = TenantId(crate::commands::admin::find_tenant(store, &a.tenant).await?.id);
    let mut job = NewJob::new(tenant, a.kind, payload);
    job.max_attempts = a.max_attempts;
    job.priority = a.priority;
    job.dedupe_key = a.dedupe_key;
    job.run_at = a.delay_secs.map(|s| Utc::now() + Duration::seconds(s.min(10 * 365 * 86_400) as i64));
    let mut tx = store.tenant_tx(tenant).await?;
    let done = queue::enqueue(tx.conn(), &job).await?;
    tx.commit().await?;
    let (id, duplicate) = match done {
        Enqueued::New(id) => (id, false),
        Enqueued::Duplicate(id) => (id, true),
    };
    if a.json {
        output::json(&json!({"id": id, "duplicate": duplicate}));
    } else if duplicate {
        output::text(&format!("{id} (already queued with this dedupe key)"));
    } else {
        output::text(&id.to_string());
    }
    Ok(())
}

pub async fn run(store: &Store, cmd: JobsCmd) -> Result<(), CliError> {
    match cmd {
        JobsCmd::Enqueue(a) => enqueue(store, a).await?,
        JobsCmd::List { select, json } => {
            let f = filter(store, &select).await?;
            let mut tx = store.system_tx().await?;
            let rows = queue::list(tx.conn(), &f).await?;
            tx.commit().await?;
            if json {
                output::json(&rows.iter().map(job_json).collect::<Vec<_>>());
            } else {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.to_string(),
                            j.kind.clone(),
                            j.state.clone(),
                            format!("{}/{}", j.attempts, j.max_attempts),
                            j.run_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            j.last_error_class.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "KIND", "STATE", "ATTEMPTS", "RUN_AT", "LAST_ERROR"], &rows);
            }
        }
        JobsCmd::Show { id, json } => {
            let id = parse_id(&id)?;
            let mut tx = store.system_tx().await?;
            let job = queue::get(tx.conn(), id).await.map_err(|_| CliError::failed(format!("no job {id}")))?;
            let attempts = queue::attempts(tx.conn(), id).await?;
            tx.commit().await?;
            if json {
                let mut v = job_json(&job);
                v["attempt_history"] = attempts
                    .iter()
                    .map(|a| {
                        json!({"attempt": a.attempt, "worker_id": a.worker_id, "started_at": a.started_at,
                        "finished_at": a.finished_at, "outcome": a.outcome, "error_class": a.error_class,
                        "error_message": a.error_message, "duration_ms": a.duration_ms})
                    })
                    .collect();
                output::json(&v);
            } else {
                let mut s = format!(
                    "job {}  kind {}  tenant {}\nstate {}  attempts {}/{}  run_at {}\n",
                    job.id, job.kind, job.tenant_id, job.state, job.attempts, job.max_attempts, job.run_at
                );
                if let (Some(c), Some(m)) = (&job.last_error_class, &job.last_error_message) {
                    s.push_str(&format!("last error: {c}: {m}\n"));
                }
                s.push_str(&format!("payload: {}\nattempts:\n", job.payload));
                for a in &attempts {
                    s.push_str(&format!(
                        "  #{} {} on {} at {} ({} ms){}\n",
                        a.attempt,
                        a.outcome,
                        a.worker_id,
                        a.started_at.format("%Y-%m-%d %H:%M:%S"),
                        a.duration_ms,
                        match (&a.error_class, &a.error_message) {
                            (Some(c), Some(m)) => format!(": {c}: {m}"),
                            _ => String::new(),
                        }
                    ));
                }
                output::text(&s);
            }
        }
        JobsCmd::Retry(a) => act(store, "retried", a).await?,
        JobsCmd::Cancel(a) => act(store, "cancelled", a).await?,
        JobsCmd::Requeue(a) => act(store, "requeued", a).await?,
        JobsCmd::Stats { tenant, json } => {
            let f = filter(store, &JobSelect { tenant, ..Default::default() }).await?;
            let mut tx = store.system_tx().await?;
            let rows = queue::stats(tx.conn(), f.tenant).await?;
            tx.commit().await?;
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|r| json!({"state": r.state, "kind": r.kind, "jobs": r.jobs, "oldest_due_secs": r.oldest_due_secs}))
                    .collect();
                output::json(&v);
            } else {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.kind.clone(),
                            r.state.clone(),
                            r.jobs.to_string(),
                            r.oldest_due_secs.map(|s| format!("{s:.1}")).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["KIND", "STATE", "JOBS", "OLDEST_DUE_SECS"], &rows);
            }
        }
    }
    Ok(())
}

async fn act(store: &Store, verb: &str, a: JobActionArgs) -> Result<(), CliError> {
    let mut f = filter(store, &a.select).await?;
    let filtered = a.select.tenant.is_some()
        || a.select.state.is_some()
        || a.select.kind.is_some()
        || a.select.older_than.is_some();
    match &a.id {
        Some(id) => f.ids = Some(vec![parse_id(id)?]),
        None if filtered || a.all => {}
        None => {
            return Err(CliError::usage("give a job id, a filter (--tenant, --state, --kind, --older-than) or --all"));
        }
    }
    let mut tx = store.system_tx().await?;
    let ids = match verb {
        "retried" => queue::retry(tx.conn(), &f).await?,
        "cancelled" => queue::cancel(tx.conn(), &f).await?,
        _ => queue::requeue(tx.conn(), &f).await?,
    };
    tx.commit().await?;
    if a.json {
        output::json(&json!({ "affected": ids.len(), "ids": ids }));
    } else {
        output::text(&format!("{verb} {} job(s)", ids.len()));
    }
    Ok(())
}
