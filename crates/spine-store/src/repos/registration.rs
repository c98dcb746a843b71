//! Registration (decision 0019): one arrival of one or more items becomes capture events, files
//! and file versions, and for each new version an import batch and a processing job — in the caller's
//! (ingest) transaction, so all of it exists or none does.
//!
//! A file is (tenant, source, original name); a version is its bytes, unique per tenant by
//! SHA-256. Bytes already registered are a duplicate capture pointing at the existing version.
//!
//! Statements per call (a group of arrivals, decision 0027): the sources, one lock statement, one
//! hash lookup, the file upsert per new version (one or two statements: it decides the version
//! number, so it runs item by item), then one INSERT per table for the whole group
//! (`registration_rows`) and one for the jobs — 7 statements per new item before, 1–2 now.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::registration_rows::{self, CaptureRow, VersionRow};
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
    // A group's arrivals mostly share their source (every upload is `upload`): one lookup each.
    let mut known: HashMap<&str, Uuid> = HashMap::new();
    for (arrival, items) in arrivals {
        let source_id = match known.get(arrival.source_key.as_str()) {
            Some(&id) => id,
            None => {
                let id = ensure_source(tx, arrival).await?;
                known.insert(&arrival.source_key, id);
                id
            }
        };
        keys.extend(lock_keys_of(tx.tenant(), source_id, items));
        sources.push(source_id);
    }
    lock_keys(tx, &keys).await?;
    insert_items(tx, arrivals, &sources).await
}

/// Plans every item in order (a duplicate of bytes registered before, also earlier in this
/// group; or a new version of its file, found or created here), then writes the group's rows
/// with one statement per table and enqueues its jobs with one more.
async fn insert_items(
    tx: &mut TenantTx,
    arrivals: &[(&Arrival, &[StoredItem])],
    sources: &[Uuid],
) -> Result<Vec<Vec<Registered>>, StoreError> {
    let tenant = tx.tenant();
    let hashes: Vec<&str> = arrivals.iter().flat_map(|(_, items)| items.iter().map(|i| i.sha256.as_str())).collect();
    let mut known: HashMap<String, (Uuid, i32)> = versions_by_hash(tx, &hashes).await?;
    let (mut captures, mut versions, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(arrivals.len());
    for ((arrival, items), &source_id) in arrivals.iter().zip(sources) {
        let mut done = Vec::with_capacity(items.len());
        for item in items.iter() {
            let capture_id = Uuid::now_v7();
            let details = capture_details(item);
            if let Some(&file) = known.get(&item.sha256) {
                captures.push(CaptureRow { id: capture_id, arrival, sha256: &item.sha256, file, batch: None, details });
                done.push(registered(item, capture_id, file.0, file.1, None, None));
                continue;
            }
            let file = upsert_file(tx, source_id, arrival, item).await?;
            known.insert(item.sha256.clone(), file);
            let batch = Uuid::now_v7();
            captures.push(CaptureRow {
                id: capture_id,
                arrival,
                sha256: &item.sha256,
                file,
                batch: Some(batch),
                details,
            });
            versions.push(VersionRow {
                arrival,
                source_id,
                file,
                batch,
                capture: capture_id,
                original_name: &item.original_name,
                sha256: &item.sha256,
                size: size_i64(item.size)?,
                media_type: &item.media_type,
            });
            let (file_id, version) = file;
            let mut job = NewJob::new(
                tenant,
                PROCESS_FILE_KIND,
                json!({"type": "file_process.v1", "file_id": file_id, "version": version, "import_batch_id": batch}),
            );
            // No dedupe key: a version gets its one job here, in the transaction that creates the
            // version. A key would also make every finish of these jobs a non-HOT update (the key
            // leaves `jobs_dedupe_active` when the job ends; decision 0028) and every insert take
            // the ON CONFLICT path.
            job.file_id = Some(file_id);
            job.import_batch_id = Some(batch);
            jobs.push(job);
            done.push(registered(item, capture_id, file_id, version, Some(batch), None));
        }
        out.push(done);
    }
    registration_rows::insert_rows(tx, &captures, &versions).await?;
    let mut job_ids = queue::enqueue_many(tx.conn(), &jobs).await?.into_iter();
    for r in out.iter_mut().flatten().filter(|r| !r.duplicate) {
        r.job_id = job_ids.next().map(|e| e.id());
    }
    Ok(out)
}

/// What a capture event records of its item beside the ingress's own details.
fn capture_details(item: &StoredItem) -> Value {
    let mut details = item.details.clone();
    if let Value::Object(map) = &mut details {
        map.insert("original_name".into(), Value::String(item.original_name.clone()));
        map.insert("size_bytes".into(), json!(item.size));
    }
    details
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

/// The registered versions among `hashes`, by hash.
async fn versions_by_hash(tx: &mut TenantTx, hashes: &[&str]) -> Result<HashMap<String, (Uuid, i32)>, StoreError> {
    let rows: Vec<(String, Uuid, i32)> = sqlx::query_as(
        "SELECT content_sha256, file_id, version FROM qinexus.file_versions WHERE content_sha256 = ANY($1)",
    )
    .bind(hashes)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|(h, f, v)| (h, (f, v))).collect())
}

/// The file the item is a new version of (same source and name), or a new file; returns its id
/// and the version number the item becomes. One statement either way: the insert turns into the
/// new version's update on the `(tenant_id, source_id, original_name)` key.
async fn upsert_file(
    tx: &mut TenantTx,
    source_id: Uuid,
    arrival: &Arrival,
    item: &StoredItem,
) -> Result<(Uuid, i32), StoreError> {
    let tenant = tx.tenant();
    sqlx::query_as(
        "INSERT INTO qinexus.files (id, tenant_id, source_id, original_name, storage_name, content_sha256, size_bytes, \
                                    media_type, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, source_id, original_name) DO UPDATE \
         SET current_version = qinexus.files.current_version + 1, content_sha256 = excluded.content_sha256, \
             size_bytes = excluded.size_bytes, media_type = excluded.media_type, status = 'registered', \
             updated_by = excluded.created_by \
         RETURNING id, current_version",
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
    .map_err(|e| StoreError::on_constraint(e, "file"))
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
