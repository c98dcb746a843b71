//! `spine connection events`: a connection's status changes, by people and by the runtime
//! (decision 0022), with its failure streak and rate-limit counters (decision 0024).

use serde_json::json;
use spine_store::TenantTx;
use spine_store::repos::connections::{self as repo, Connection};
use spine_store::repos::rate_limits;

use crate::error::CliError;
use crate::output;

pub async fn print(tx: &mut TenantTx, c: &Connection, limit: i64, as_json: bool) -> Result<(), CliError> {
    if !(1..=500).contains(&limit) {
        return Err(CliError::usage("--limit must be between 1 and 500"));
    }
    let events = repo::events(tx, c.id, limit).await?;
    let limits = rate_limits::stats(tx, c.id).await?;
    if as_json {
        output::json(&json!({
            "connection": { "id": c.id, "name": c.name, "status": c.status, "status_reason": c.status_reason,
                            "consecutive_failures": c.consecutive_failures, "failing_since": c.failing_since,
                            "last_error_class": c.last_error_class, "last_error_at": c.last_error_at },
            "events": events,
            "rate_limit": limits.map(|s| json!({
                "calls_last_minute": s.calls_last_minute, "admitted_calls": s.admitted_calls, "hits": s.hits,
                "remote_429s": s.remote_429s, "blocked_until": s.blocked_until, "last_429_at": s.last_429_at })),
        }));
        return Ok(());
    }
    output::text(&format!(
        "{}  {}{}\nfailures in a row: {} (degraded after {}, disabled after {} s failing){}",
        c.name,
        c.status,
        c.status_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
        c.consecutive_failures,
        c.degrade_after_failures,
        c.disable_after_secs,
        c.last_error_class.as_deref().map(|k| format!("; last error: {k}")).unwrap_or_default(),
    ));
    if let Some(s) = limits {
        output::text(&format!(
            "rate limit: {} calls in the last minute, {} delayed, {} remote 429s{}",
            s.calls_last_minute,
            s.hits,
            s.remote_429s,
            s.blocked_until.map(|t| format!(", backing off until {}", t.to_rfc3339())).unwrap_or_default(),
        ));
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.created_at.to_rfc3339(),
                format!("{} -> {}", e.from_status, e.to_status),
                e.actor.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["WHEN", "CHANGE", "BY", "REASON"], &rows);
    Ok(())
}
