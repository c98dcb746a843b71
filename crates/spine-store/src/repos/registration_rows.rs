//! The rows a registration group writes, in one statement for the whole group (decision 0027's
//! follow-up): import batches, capture events, file versions and import files, each an
//! `INSERT ... SELECT FROM unnest(...)`. The jobs go through `queue::enqueue_many`.

use serde_json::Value;
use uuid::Uuid;

use super::registration::Arrival;
use crate::{StoreError, TenantTx};

/// One capture event to write: of a new version (with its batch) or of a duplicate.
pub(super) struct CaptureRow<'a> {
    pub id: Uuid,
    pub arrival: &'a Arrival,
    pub sha256: &'a str,
    pub file: (Uuid, i32),
    pub batch: Option<Uuid>,
    pub details: Value,
}

/// One new version: its file, number, batch and the capture that brought it.
pub(super) struct VersionRow<'a> {
    pub arrival: &'a Arrival,
    pub source_id: Uuid,
    pub file: (Uuid, i32),
    pub batch: Uuid,
    pub capture: Uuid,
    pub original_name: &'a str,
    pub sha256: &'a str,
    pub size: i64,
    pub media_type: &'a str,
}

/// Writes the group's import batches, captures, versions and import files: one statement, a
/// data-modifying CTE per table (the references between them are checked at its end). One
/// statement instead of four saved three round trips per group, and PostgreSQL's per-statement
/// work (its CHECK constraints are read and prepared again for every statement).
pub(super) async fn insert_rows(
    tx: &mut TenantTx,
    captures: &[CaptureRow<'_>],
    versions: &[VersionRow<'_>],
) -> Result<(), StoreError> {
    if captures.is_empty() && versions.is_empty() {
        return Ok(());
    }
    let tenant = tx.tenant();
    let profile: Vec<Option<&str>> = versions.iter().map(|v| v.arrival.profile.as_deref()).collect();
    let details: Vec<sqlx::types::Json<&Value>> = captures.iter().map(|c| sqlx::types::Json(&c.details)).collect();
    let file: Vec<Uuid> = versions.iter().map(|v| v.file.0).collect();
    let version: Vec<i32> = versions.iter().map(|v| v.file.1).collect();
    sqlx::query(
        "WITH batches AS ( \
           INSERT INTO qinexus.import_batches (id, tenant_id, source_id, profile, forced_profile, created_by) \
           SELECT b.id, $1, b.source_id, b.profile, b.profile IS NOT NULL, b.created_by \
           FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[]) AS b(id, source_id, profile, created_by)), \
         captures AS ( \
           INSERT INTO qiaccess.capture_events (id, tenant_id, ingress_kind, route, device_id, captured_by, \
                                                content_sha256, file_id, file_version, import_batch_id, is_duplicate, details) \
           SELECT c.id, $1, c.ingress_kind, c.route, c.device_id, c.captured_by, c.sha256, c.file_id, c.version, \
                  c.batch, c.batch IS NULL, c.details \
           FROM unnest($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::uuid[], \
                       $13::int4[], $14::uuid[], $15::jsonb[]) \
                AS c(id, ingress_kind, route, device_id, captured_by, sha256, file_id, version, batch, details)), \
         versions AS ( \
           INSERT INTO qinexus.file_versions (tenant_id, file_id, version, original_name, content_sha256, size_bytes, \
                                              media_type, capture_event_id, created_by) \
           SELECT $1, v.file_id, v.version, v.original_name, v.sha256, v.size, v.media_type, v.capture, v.created_by \
           FROM unnest($16::uuid[], $17::int4[], $18::text[], $19::text[], $20::int8[], $21::text[], $22::uuid[], \
                       $23::text[]) AS v(file_id, version, original_name, sha256, size, media_type, capture, created_by)) \
         INSERT INTO qinexus.import_files (tenant_id, import_batch_id, file_id, file_version) \
         SELECT $1, f.batch, f.file_id, f.version FROM unnest($2::uuid[], $16::uuid[], $17::int4[]) AS f(batch, file_id, version)",
    )
    .bind(tenant.as_uuid())
    // $2-$5: the import batches, one per new version.
    .bind(versions.iter().map(|v| v.batch).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.source_id).collect::<Vec<_>>())
    .bind(&profile)
    .bind(versions.iter().map(|v| v.arrival.captured_by.as_str()).collect::<Vec<_>>())
    // $6-$15: the capture events, one per item.
    .bind(captures.iter().map(|c| c.id).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.arrival.ingress_kind).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.arrival.route.as_str()).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.arrival.device_id.as_deref()).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.arrival.captured_by.as_str()).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.sha256).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.file.0).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.file.1).collect::<Vec<_>>())
    .bind(captures.iter().map(|c| c.batch).collect::<Vec<_>>())
    .bind(&details)
    // $16-$23: the file versions (and, with $2, the import files).
    .bind(&file)
    .bind(&version)
    .bind(versions.iter().map(|v| v.original_name).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.sha256).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.size).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.media_type).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.capture).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.arrival.captured_by.as_str()).collect::<Vec<_>>())
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "registration"))?;
    Ok(())
}
