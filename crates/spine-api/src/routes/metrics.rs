//! Prometheus metrics: queue depth per state and kind and the wait of the oldest due job, read
//! from the database at scrape time (all tenants, aggregated: no tenant ids leave), followed by
//! the process's own metrics (claim latency, run durations, failures by class) when a recorder
//! is installed.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use spine_store::queue;

use crate::error::ApiResult;
use crate::state::AppState;

/// Prometheus text exposition (version 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let mut tx = state.store.system_tx().await?;
    let rows = queue::stats(tx.conn(), None).await?;
    tx.commit().await?;
    let mut out = String::new();
    out.push_str("# HELP spine_jobs Jobs per state and kind.\n# TYPE spine_jobs gauge\n");
    for r in &rows {
        let _ = writeln!(out, "spine_jobs{{state=\"{}\",kind=\"{}\"}} {}", r.state, escape(&r.kind), r.jobs);
    }
    out.push_str(
        "# HELP spine_jobs_oldest_due_seconds Wait of the oldest due (queued or retrying) job per kind.\n\
         # TYPE spine_jobs_oldest_due_seconds gauge\n",
    );
    let mut oldest: std::collections::BTreeMap<&str, f64> = Default::default();
    for r in &rows {
        if let Some(s) = r.oldest_due_secs {
            let e = oldest.entry(r.kind.as_str()).or_insert(0.0);
            *e = e.max(s);
        }
    }
    for (kind, secs) in oldest {
        let _ = writeln!(out, "spine_jobs_oldest_due_seconds{{kind=\"{}\"}} {secs:.3}", escape(kind));
    }
    if let Some(render) = &state.metrics {
        out.push_str(&render());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
