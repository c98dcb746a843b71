//! Claims: many due jobs in one `FOR UPDATE SKIP LOCKED` statement, leased to a worker.
//!
//! Fair across tenants (decision 0025): [`claim`] gives every tenant with ready jobs an equal
//! share. When a database has one tenant, [`claim_tenant`] takes the same jobs with one index
//! scan instead of two (the loose scan for tenants walks the index entries of just-claimed rows
//! a second time); [`only_tenant`] tells a worker when that applies.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};
use uuid::Uuid;

use crate::StoreError;

#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub payload: Value,
    /// The number of this attempt (1-based).
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    /// The database's clock at the claim.
    pub started_at: DateTime<Utc>,
    pub file_id: Option<Uuid>,
    pub import_batch_id: Option<Uuid>,
    pub parent_job_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
}

/// Read by position (the claim's RETURNING order): a derived `FromRow` looks every column up by
/// name, a hash lookup per column and job that showed in the worker's burn-down profile.
impl sqlx::FromRow<'_, PgRow> for ClaimedJob {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get(0)?,
            tenant_id: row.try_get(1)?,
            kind: row.try_get(2)?,
            payload: row.try_get(3)?,
            attempts: row.try_get(4)?,
            max_attempts: row.try_get(5)?,
            run_at: row.try_get(6)?,
            started_at: row.try_get(7)?,
            file_id: row.try_get(8)?,
            import_batch_id: row.try_get(9)?,
            parent_job_id: row.try_get(10)?,
            connection_id: row.try_get(11)?,
        })
    }
}

macro_rules! claim_sql {
    ($pick:literal) => {
        concat!(
            // `id = ANY(ARRAY(…))` makes the update a primary-key lookup per claimed row; a join
            // with the claiming CTE lets the planner hash the whole table instead.
            "WITH u AS (
                 UPDATE qiserver.jobs j
                 SET state = 'running', attempts = j.attempts + 1, lease_owner = $1,
                     lease_expires_at = now() + make_interval(secs => $4), started_at = now(), updated_at = now()
                 WHERE j.id = ANY(ARRAY(",
            $pick,
            "))
                 RETURNING j.id, j.tenant_id, j.kind, j.payload, j.attempts, j.max_attempts, j.run_at, j.started_at,
                           j.file_id, j.import_batch_id, j.parent_job_id, j.connection_id, j.lease_expires_at),
             -- The worker's own lease (decision 0028), only when it took something.
             w AS (",
            renew_worker!("SELECT $1, max(lease_expires_at) FROM u HAVING count(*) > 0"),
            ")
             SELECT id, tenant_id, kind, payload, attempts, max_attempts, run_at, started_at, file_id, import_batch_id,
                    parent_job_id, connection_id
             FROM u"
        )
    };
}

/// The tenants with ready jobs, by a loose scan of jobs_claimable; each gets an equal share.
const CLAIM_FAIR: &str = claim_sql!(
    "WITH RECURSIVE t(tenant_id) AS (
         (SELECT tenant_id FROM qiserver.jobs WHERE claimable_at IS NOT NULL ORDER BY tenant_id LIMIT 1)
         UNION ALL
         SELECT (SELECT r.tenant_id FROM qiserver.jobs r
                 WHERE r.claimable_at IS NOT NULL AND r.tenant_id > t.tenant_id ORDER BY r.tenant_id LIMIT 1)
         FROM t WHERE t.tenant_id IS NOT NULL),
     share AS (SELECT ceil($3::float8 / greatest(count(*), 1))::int AS n FROM t WHERE tenant_id IS NOT NULL)
     SELECT c.id FROM t CROSS JOIN share CROSS JOIN LATERAL (
         SELECT id FROM qiserver.jobs
         WHERE tenant_id = t.tenant_id AND claimable_at <= now() AND ($2::text[] IS NULL OR kind = ANY($2))
         ORDER BY priority DESC, claimable_at, id
         LIMIT share.n
         FOR UPDATE SKIP LOCKED) c
     WHERE t.tenant_id IS NOT NULL
     LIMIT $3"
);

const CLAIM_TENANT: &str = claim_sql!(
    "SELECT id FROM qiserver.jobs
     WHERE tenant_id = $5 AND claimable_at <= now() AND ($2::text[] IS NULL OR kind = ANY($2))
     ORDER BY priority DESC, claimable_at, id
     LIMIT $3
     FOR UPDATE SKIP LOCKED"
);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Claims up to `limit` due jobs (optionally only of `kinds`) in one statement, leasing them to
/// `worker` for `lease`: an equal share for each tenant with ready jobs, and within a tenant in
/// order of priority, then due time. Concurrent claimers skip each other's rows.
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    kinds: Option<&[String]>,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, StoreError> {
    Ok(sqlx::query_as(CLAIM_FAIR).bind(worker).bind(kinds).bind(limit).bind(secs(lease)).fetch_all(pool).await?)
}

/// [`claim`] restricted to one tenant's jobs: what `claim` does when that tenant is the only one.
pub async fn claim_tenant(
    pool: &PgPool,
    worker: &str,
    tenant: Uuid,
    kinds: Option<&[String]>,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, StoreError> {
    Ok(sqlx::query_as(CLAIM_TENANT)
        .bind(worker)
        .bind(kinds)
        .bind(limit)
        .bind(secs(lease))
        .bind(tenant)
        .fetch_all(pool)
        .await?)
}

/// The tenant, when the database has exactly one.
pub async fn only_tenant(pool: &PgPool) -> Result<Option<Uuid>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM core.tenants LIMIT 2").fetch_all(pool).await?;
    Ok(if ids.len() == 1 { Some(ids[0]) } else { None })
}
