//! Planner statistics for young tables (decision 0029).
//!
//! PostgreSQL plans a prepared statement (and every foreign-key check) once it has run a few
//! times, and keeps that plan until the table's statistics change. A statement first run
//! against a nearly empty table keeps the plan that suits a nearly empty table: a sequential
//! scan, or a unique index used for its first column only. On a fresh install, registration's
//! tables grow from nothing to thousands of rows in seconds while autovacuum's first visit is
//! up to a minute away (longer on a shared server), and in that window every upload read the
//! whole `qinexus.files` index several times. Analysing a table each time it has roughly
//! doubled since its last analysis replaces those plans as the table grows, at a logarithmic
//! number of analyses. Tables past [`LARGE`] rows are left to autovacuum.

use sqlx::{Acquire, PgPool};

use crate::StoreError;

/// Tables with at least this many rows (by the last estimate) are left to autovacuum.
pub const LARGE: f64 = 1_000_000.0;

/// Rows changed since the last analysis that always count as "grown" (autovacuum's default
/// `autovacuum_analyze_threshold`).
const BASE_CHANGES: i64 = 50;

/// At most this many tables are analysed in one pass; the rest wait for the next.
const PER_PASS: i64 = 16;

/// Only one keeper at a time analyses (`spine up` and `spine worker` may both run one).
const LOCK_KEY: &str = "spine.statistics";

/// The tables this role may analyse that changed by more than `BASE_CHANGES` rows plus their
/// size at the last analysis (never analysed: size 0), most changed first.
const GROWN: &str = "SELECT format('%I.%I', s.schemaname, s.relname)
     FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
     WHERE c.relpersistence = 'p'
       AND pg_has_role(c.relowner, 'USAGE')
       AND c.reltuples < $1
       AND s.n_mod_since_analyze > $2 + greatest(c.reltuples, 0)
     ORDER BY s.n_mod_since_analyze DESC
     LIMIT $3";

/// One pass: analyses the tables that have grown since their last analysis, in one transaction
/// (so the keeper's lock covers the whole pass). Returns their names; empty when none had, or
/// when another keeper holds the lock.
pub async fn analyze_grown(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(Vec::new());
    }
    // A table another session holds exclusively (a migration) is skipped, not waited for.
    sqlx::query("SET LOCAL lock_timeout = '1s'").execute(&mut *tx).await?;
    let tables: Vec<String> =
        sqlx::query_scalar(GROWN).bind(LARGE).bind(BASE_CHANGES).bind(PER_PASS).fetch_all(&mut *tx).await?;
    let mut done = Vec::with_capacity(tables.len());
    for table in tables {
        // Each table in its own savepoint: one that is locked or gone does not hold up the others.
        let mut one = tx.begin().await?;
        // The name comes from the catalog, quoted by format('%I.%I').
        match sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}"))).execute(&mut *one).await {
            Ok(_) => {
                one.commit().await?;
                done.push(table);
            }
            Err(e) => {
                one.rollback().await?;
                tracing::debug!(%table, error = %e, "analysis skipped");
            }
        }
    }
    tx.commit().await?;
    Ok(done)
}
