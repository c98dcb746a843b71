//! Keeps the planner's statistics current while Spine's tables are young (decision 0029): a
//! pass every interval analyses the tables that have roughly doubled since their last analysis,
//! so plans made when a table was nearly empty do not outlive that. Failures are logged and the
//! next pass tries again.

use std::time::Duration;

use spine_store::StoreError;
use spine_store::statistics;
use sqlx::PgPool;

use crate::supervisor::Shutdown;

/// Time between passes: a table growing from nothing keeps a plan made for its old size for at
/// most about this long.
const EVERY: Duration = Duration::from_secs(2);

pub struct StatisticsKeeper {
    pool: PgPool,
}

impl StatisticsKeeper {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), StoreError> {
        loop {
            match statistics::analyze_grown(&self.pool).await {
                Ok(tables) if tables.is_empty() => {}
                Ok(tables) => tracing::debug!(?tables, "analysed grown tables"),
                Err(e) => tracing::warn!(error = %e, "refreshing planner statistics failed; will retry"),
            }
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }
}
