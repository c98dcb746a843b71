//! Enqueueing, inside the caller's transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use spine_core::ids::TenantId;
use uuid::Uuid;

use crate::StoreError;

/// A job to enqueue. `kind` selects the handler; `payload` is its versioned tagged JSON.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub tenant: TenantId,
    pub kind: String,
    pub payload: Value,
    pub priority: i16,
    /// Not before this time (default: now).
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// At most one unfinished job per (tenant, kind, dedupe_key).
    pub dedupe_key: Option<String>,
    pub file_id: Option<Uuid>,
    pub import_batch_id: Option<Uuid>,
    pub parent_job_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
    /// The connection whose remote system the job calls: its outcomes move the connection's
    /// status (decision 0022), and workers skip the job while the connection is disabled.
    pub connection_id: Option<Uuid>,
}

impl NewJob {
    pub fn new(tenant: TenantId, kind: impl Into<String>, payload: Value) -> Self {
        Self {
            tenant,
            kind: kind.into(),
            payload,
            priority: 0,
            run_at: None,
            max_attempts: 10,
            dedupe_key: None,
            file_id: None,
            import_batch_id: None,
            parent_job_id: None,
            schedule_id: None,
            connection_id: None,
        }
    }
}

/// The result of an enqueue: a new job, or the unfinished job that already holds the dedupe key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    New(Uuid),
    Duplicate(Uuid),
}

impl Enqueued {
    pub fn id(self) -> Uuid {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// The batch insert; `$conflict` is empty or the dedupe clause. When it inserts anything it also
/// notifies idle workers (delivered at commit; `$14` is the channel), in the same round trip. The
/// payload is the jobs' kind when they all have one kind, else empty: a worker may wait a moment
/// to claim jobs of a kind that gains from batches (decision 0034).
macro_rules! insert_jobs {
    ($conflict:literal) => {
        concat!(
            "WITH ins AS (INSERT INTO qiserver.jobs (id, tenant_id, kind, payload, priority, run_at, max_attempts, dedupe_key,
                                        file_id, import_batch_id, parent_job_id, schedule_id, connection_id)
             SELECT id, tenant_id, kind, payload, priority, coalesce(run_at, now()), max_attempts, dedupe_key,
                    file_id, import_batch_id, parent_job_id, schedule_id, connection_id
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::int2[], $6::timestamptz[], $7::int4[],
                         $8::text[], $9::uuid[], $10::uuid[], $11::uuid[], $12::uuid[], $13::uuid[])
                  AS t(id, tenant_id, kind, payload, priority, run_at, max_attempts, dedupe_key, file_id,
                       import_batch_id, parent_job_id, schedule_id, connection_id) ",
            $conflict,
            " RETURNING id, parent_job_id, kind)
             SELECT i.id, i.parent_job_id FROM ins i
             CROSS JOIN (SELECT pg_notify($14, CASE WHEN min(kind) = max(kind) THEN min(kind) ELSE '' END)
                         FROM ins HAVING count(*) > 0) AS notified"
        )
    };
}

const INSERT_DEDUPE: &str =
    insert_jobs!("ON CONFLICT (tenant_id, kind, active_dedupe_key) WHERE active_dedupe_key IS NOT NULL DO NOTHING");
const INSERT_PLAIN: &str = insert_jobs!("");

/// Enqueues one job on `conn` (the caller's transaction) and notifies idle workers at commit.
pub async fn enqueue(conn: &mut sqlx::PgConnection, job: &NewJob) -> Result<Enqueued, StoreError> {
    let ids = enqueue_many(conn, std::slice::from_ref(job)).await?;
    Ok(ids[0])
}

/// Enqueues many jobs with one INSERT; results are in input order.
pub async fn enqueue_many(conn: &mut sqlx::PgConnection, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(j) = jobs.iter().find(|j| !spine_core::jobs::is_valid_kind(&j.kind)) {
        return Err(StoreError::Invalid(format!(
            "job kind {:?}: use a lowercase letter, then up to 62 of a-z, 0-9, '_' and '.'",
            j.kind
        )));
    }
    let n = jobs.len();
    let mut id = Vec::with_capacity(n);
    let (mut tenant, mut kind, mut payload, mut priority, mut run_at, mut max_attempts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut dedupe, mut file, mut batch, mut parent, mut schedule, mut connection) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for j in jobs {
        id.push(Uuid::now_v7());
        tenant.push(j.tenant.as_uuid());
        kind.push(j.kind.as_str());
        payload.push(&j.payload);
        priority.push(j.priority);
        run_at.push(j.run_at);
        max_attempts.push(j.max_attempts);
        dedupe.push(j.dedupe_key.as_deref());
        file.push(j.file_id);
        batch.push(j.import_batch_id);
        parent.push(j.parent_job_id);
        schedule.push(j.schedule_id);
        connection.push(j.connection_id);
    }
    // Without dedupe keys no conflict is possible: a plain INSERT skips the speculative-insertion
    // bookkeeping (one extra WAL record per row) that ON CONFLICT costs.
    let sql = if jobs.iter().any(|j| j.dedupe_key.is_some()) { INSERT_DEDUPE } else { INSERT_PLAIN };
    let inserted: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(sql)
        .bind(&id)
        .bind(&tenant)
        .bind(&kind)
        .bind(&payload)
        .bind(&priority)
        .bind(&run_at)
        .bind(&max_attempts)
        .bind(&dedupe)
        .bind(&file)
        .bind(&batch)
        .bind(&parent)
        .bind(&schedule)
        .bind(&connection)
        .bind(super::CHANNEL)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| StoreError::on_constraint(e, "job"))?;

    let parents: Vec<Uuid> = inserted.iter().filter_map(|(_, p)| *p).collect();
    if !parents.is_empty() {
        sqlx::query(
            "UPDATE qiserver.jobs p SET children_total = p.children_total + c.n
             FROM (SELECT x AS id, count(*) AS n FROM unnest($1::uuid[]) AS x GROUP BY x) c WHERE p.id = c.id",
        )
        .bind(&parents)
        .execute(&mut *conn)
        .await?;
    }

    let fresh: std::collections::HashSet<Uuid> = inserted.iter().map(|(i, _)| *i).collect();
    let mut out = Vec::with_capacity(n);
    for (i, j) in jobs.iter().enumerate() {
        if fresh.contains(&id[i]) {
            out.push(Enqueued::New(id[i]));
            continue;
        }
        // Lost to the dedupe key: report the job that holds it.
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM qiserver.jobs WHERE tenant_id = $1 AND kind = $2 AND active_dedupe_key = $3",
        )
        .bind(j.tenant.as_uuid())
        .bind(&j.kind)
        .bind(&j.dedupe_key)
        .fetch_optional(&mut *conn)
        .await?;
        match existing {
            Some(e) => out.push(Enqueued::Duplicate(e)),
            // The same key twice in this very batch: the first one won.
            None => out.push(Enqueued::Duplicate(
                jobs[..i]
                    .iter()
                    .position(|p| p.tenant == j.tenant && p.kind == j.kind && p.dedupe_key == j.dedupe_key)
                    .map(|p| id[p])
                    .unwrap_or(id[i]),
            )),
        }
    }
    Ok(out)
}
