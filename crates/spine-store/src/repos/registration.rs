//! Registration (decision 0019): one arrival of one or more items becomes capture events, files
//! and file versions, and for each new version an import batch and a processing job — in the caller's
//! (ingest) transaction, so all of it exists or none does.
//!
//! A file is (tenant, source, original name); a version is its bytes, unique per tenant by
//! SHA-256. Bytes already registered are a duplicate capture pointing at the existing version.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::queue::{self, NewJob};
use crate::{StoreError, TenantTx};

/// The job kind that continues a registration (staging, extraction).
pub const PROCESS_FILE_KIND: &str = "spine.file.process";

/// Where an arrival came from.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// One of qiaccess.capture_events' ingress kinds (upload, watch_folder, ...).
    pub ingress_kind: &'static str,
    /// The source within the tenant (e.g. `upload`, `inbox:/data/inbox`); created on first use.
    pub source_key: String,
    pub source_display_name: String,
    /// The route within the ingress (API path, folder).
    pub route: String,
    pub device_id: Option<String>,
    /// The principal that delivered it, as kind:id.
    pub captured_by: String,
    /// An import profile chosen by the sender, when any (checked by the caller).
    pub profile: Option<String>,
}

/// One item of an arrival whose bytes are already in the blob store.
#[derive(Clone, Debug)]
pub struct StoredItem {
    pub original_name: String,
    pub storage_name: String,
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    /// Ingress-specific context (headers, folder path); never credentials.
    pub details: Value,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub capture_id: Uuid,
    pub file_id: Uuid,
    pub version: i32,
    /// True when these bytes were already registered: no new file, version, batch or job.
    pub duplicate: bool,
    /// The item's import batch (one per new version, so staged row numbers are per file).
    pub import_batch_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub original_name: String,
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

/// Registers `items` (see the module documentation). Runs in `tx` and does not commit.
pub async fn register(
    tx: &mut TenantTx,
    arrival: &Arrival,
    items: &[StoredItem],
) -> Result<Vec<Registered>, StoreError> {
    let mut done = register_arrivals(tx, &[(arrival, items)]).await?;
    Ok(done.pop().unwrap_or_default())
}

/// Registers several arrivals of one tenant in one transaction (group commit, decision 0027):
/// the locks of all of them are taken at once, in one sorted order. Runs in `tx` and does not
/// commit; returns each arrival's results in order.
pub async fn register_arrivals(
    tx: &mut TenantTx,
    arrivals: &[(&Arrival, &[StoredItem])],
) -> Result<Vec<Vec<Registered>>, StoreError> {
    let mut sources = Vec::with_capacity(arrivals.len());
    let mut keys: Vec<String> = Vec::new();
    for (arrival, items) in arrivals {
        let source_id = ensure_source(tx, arrival).await?;
        keys.extend(lock_keys_of(tx.tenant(), source_id, items));
        sources.push(source_id);
    }
    lock_keys(tx, &keys).await?;
    let mut out = Vec::with_capacity(arrivals.len());
    for ((arrival, items), source_id) in arrivals.iter().zip(sources) {
        out.push(insert_items(tx, source_id, arrival, items).await?);
    }
    Ok(out)
}

async fn insert_items(
    tx: &mut TenantTx,
    source_id: Uuid,
    arrival: &Arrival,
    items: &[StoredItem],
) -> Result<Vec<Registered>, StoreError> {
    let tenant = tx.tenant();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some((file_id, version)) = version_by_hash(tx, &item.sha256).await? {
            let capture_id = insert_capture(tx, arrival, item, Some((file_id, version)), None, true).await?;
            out.push(registered(item, capture_id, file_id, version, None, None));
            continue;
        }
        let batch = insert_batch(tx, source_id, arrival).await?;
        let (file_id, version) = upsert_file(tx, source_id, arrival, item).await?;
        let capture_id = insert_capture(tx, arrival, item, Some((file_id, version)), Some(batch), false).await?;
        sqlx::query(
            "INSERT INTO qinexus.file_versions (tenant_id, file_id, version, original_name, content_sha256, size_bytes, \
                                                media_type, capture_event_id, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant.as_uuid())
        .bind(file_id)
        .bind(version)
        .bind(&item.original_name)
        .bind(&item.sha256)
        .bind(size_i64(item.size)?)
        .bind(&item.media_type)
        .bind(capture_id)
        .bind(&arrival.captured_by)
        .execute(tx.conn())
        .await
        .map_err(|e| StoreError::on_constraint(e, "file version"))?;
        sqlx::query(
            "INSERT INTO qinexus.import_files (tenant_id, import_batch_id, file_id, file_version) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant.as_uuid())
        .bind(batch)
        .bind(file_id)
        .bind(version)
        .execute(tx.conn())
        .await
        .map_err(|e| StoreError::on_constraint(e, "import file"))?;
        let mut job = NewJob::new(
            tenant,
            PROCESS_FILE_KIND,
            json!({"type": "file_process.v1", "file_id": file_id, "version": version, "import_batch_id": batch}),
        );
        job.file_id = Some(file_id);
        job.import_batch_id = Some(batch);
        job.dedupe_key = Some(format!("{file_id}:{version}"));
        let job_id = queue::enqueue(tx.conn(), &job).await?.id();
        out.push(registered(item, capture_id, file_id, version, Some(batch), Some(job_id)));
    }
    Ok(out)
}

fn registered(
    item: &StoredItem,
    capture_id: Uuid,
    file_id: Uuid,
    version: i32,
    import_batch_id: Option<Uuid>,
    job_id: Option<Uuid>,
) -> Registered {
    Registered {
        capture_id,
        file_id,
        version,
        duplicate: import_batch_id.is_none(),
        import_batch_id,
        job_id,
        original_name: item.original_name.clone(),
        sha256: item.sha256.clone(),
        size: item.size,
        media_type: item.media_type.clone(),
    }
}

fn size_i64(size: u64) -> Result<i64, StoreError> {
    i64::try_from(size).map_err(|_| StoreError::Invalid("file too large".into()))
}

async fn ensure_source(tx: &mut TenantTx, arrival: &Arrival) -> Result<Uuid, StoreError> {
    let tenant = tx.tenant();
    let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM qinexus.sources WHERE source_key = $1")
        .bind(&arrival.source_key)
        .fetch_optional(tx.conn())
        .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    sqlx::query_scalar(
        "INSERT INTO qinexus.sources (tenant_id, source_key, source_kind, display_name, created_by) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, source_key) DO UPDATE SET updated_at = qinexus.sources.updated_at \
         RETURNING id",
    )
    .bind(tenant.as_uuid())
    .bind(&arrival.source_key)
    .bind(arrival.ingress_kind)
    .bind(&arrival.source_display_name)
    .bind(&arrival.captured_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "source"))
}

/// The advisory lock keys of an arrival: every (tenant, hash) and (tenant, source, name).
fn lock_keys_of(tenant: spine_core::ids::TenantId, source_id: Uuid, items: &[StoredItem]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(items.len() * 2);
    for item in items {
        keys.push(blob_lock_key(&item.sha256));
        keys.push(format!("spine.file:{tenant}:{source_id}:{}", item.original_name));
    }
    keys
}

/// Transaction-scoped advisory locks on `keys`, taken in one sorted order so that concurrent
/// registrations cannot deadlock.
async fn lock_keys(tx: &mut TenantTx, keys: &[String]) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k) \
         FROM (SELECT DISTINCT hashtextextended(x, 19) AS k FROM unnest($1::text[]) AS x ORDER BY 1) AS s",
    )
    .bind(keys)
    .execute(tx.conn())
    .await?;
    Ok(())
}

async fn version_by_hash(tx: &mut TenantTx, sha256: &str) -> Result<Option<(Uuid, i32)>, StoreError> {
    Ok(sqlx::query_as("SELECT file_id, version FROM qinexus.file_versions WHERE content_sha256 = $1")
        .bind(sha256)
        .fetch_optional(tx.conn())
        .await?)
}

async fn insert_batch(tx: &mut TenantTx, source_id: Uuid, arrival: &Arrival) -> Result<Uuid, StoreError> {
    let tenant = tx.tenant();
    sqlx::query_scalar(
        "INSERT INTO qinexus.import_batches (id, tenant_id, source_id, profile, forced_profile, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(source_id)
    .bind(&arrival.profile)
    .bind(arrival.profile.is_some())
    .bind(&arrival.captured_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "import batch"))
}

/// The file the item is a new version of (same source and name), or a new file; returns its id
/// and the version number the item becomes.
async fn upsert_file(
    tx: &mut TenantTx,
    source_id: Uuid,
    arrival: &Arrival,
    item: &StoredItem,
) -> Result<(Uuid, i32), StoreError> {
    let tenant = tx.tenant();
    let updated: Option<(Uuid, i32)> = sqlx::query_as(
        "UPDATE qinexus.files SET current_version = current_version + 1, content_sha256 = $3, size_bytes = $4, \
                media_type = $5, status = 'registered', updated_by = $6 \
         WHERE source_id = $1 AND original_name = $2 \
         RETURNING id, current_version",
    )
    .bind(source_id)
    .bind(&item.original_name)
    .bind(&item.sha256)
    .bind(size_i64(item.size)?)
    .bind(&item.media_type)
    .bind(&arrival.captured_by)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(found) = updated {
        return Ok(found);
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.files (id, tenant_id, source_id, original_name, storage_name, content_sha256, size_bytes, \
                                    media_type, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(source_id)
    .bind(&item.original_name)
    .bind(&item.storage_name)
    .bind(&item.sha256)
    .bind(size_i64(item.size)?)
    .bind(&item.media_type)
    .bind(&arrival.captured_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "file"))?;
    Ok((id, 1))
}

async fn insert_capture(
    tx: &mut TenantTx,
    arrival: &Arrival,
    item: &StoredItem,
    file: Option<(Uuid, i32)>,
    batch: Option<Uuid>,
    duplicate: bool,
) -> Result<Uuid, StoreError> {
    let tenant = tx.tenant();
    let mut details = item.details.clone();
    if let Value::Object(map) = &mut details {
        map.insert("original_name".into(), Value::String(item.original_name.clone()));
        map.insert("size_bytes".into(), json!(item.size));
    }
    sqlx::query_scalar(
        "INSERT INTO qiaccess.capture_events (id, tenant_id, ingress_kind, route, device_id, captured_by, content_sha256, \
                                              file_id, file_version, import_batch_id, is_duplicate, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(arrival.ingress_kind)
    .bind(&arrival.route)
    .bind(&arrival.device_id)
    .bind(&arrival.captured_by)
    .bind(&item.sha256)
    .bind(file.map(|f| f.0))
    .bind(file.map(|f| f.1))
    .bind(batch)
    .bind(duplicate)
    .bind(sqlx::types::Json(&details))
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "capture event"))
}

fn blob_lock_key(sha256: &str) -> String {
    format!("spine.blob:{sha256}")
}

/// Takes the transaction-scoped lock registration holds on a blob's hash (across tenants), so
/// that a cleanup deciding to delete a blob cannot race a registration that is about to use it.
pub async fn lock_blob(conn: &mut sqlx::PgConnection, sha256: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 19))")
        .bind(blob_lock_key(sha256))
        .execute(conn)
        .await?;
    Ok(())
}

/// True when any tenant's file version still uses the blob (a failed registration deletes a blob
/// it created only when nothing references it). Needs a connection that sees every tenant.
pub async fn blob_referenced(conn: &mut sqlx::PgConnection, sha256: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM qinexus.file_versions WHERE content_sha256 = $1)")
        .bind(sha256)
        .fetch_one(conn)
        .await?)
}
