//! `spine governance check`.

use spine_core::governance::Report;

use crate::db::Database;
use crate::error::CliError;

pub async fn check(db: &Database, json: bool) -> Result<bool, CliError> {
    let snapshot = spine_store::governance::snapshot(&db.pool).await?;
    let report = Report::from_snapshot(&snapshot);
    if json {
        crate::output::json(&report);
    } else {
        crate::output::text(&report.render_text());
    }
    Ok(report.is_clean())
}
