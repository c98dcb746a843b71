//! Promotion's writes to canonical tables: entities, people, organizations, identifiers,
//! relationships, external ids and the provenance links back to staged rows. Every write is
//! idempotent (a second promotion of the same row adds nothing), and every canonical row carries
//! its source system, source file and import batch.

use chrono::NaiveDate;
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::{Query, QueryScalar};
use uuid::Uuid;

use crate::{StoreError, TenantTx};

/// Where promoted rows came from; stamped on every canonical row written.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub source_system: String,
    pub source_file_id: Uuid,
    pub file_version: i32,
    pub import_batch_id: Uuid,
    pub import_row_id: Uuid,
    pub by: String,
}

/// Binds the provenance every canonical row carries — source_system, source_file_id,
/// import_batch_id, created_by — as a statement's last four parameters.
trait Stamped<'q>: Sized {
    fn stamped(self, p: &'q Provenance) -> Self;
}

impl<'q> Stamped<'q> for Query<'q, Postgres, PgArguments> {
    fn stamped(self, p: &'q Provenance) -> Self {
        self.bind(&p.source_system).bind(p.source_file_id).bind(p.import_batch_id).bind(&p.by)
    }
}

impl<'q, O> Stamped<'q> for QueryScalar<'q, Postgres, O, PgArguments> {
    fn stamped(self, p: &'q Provenance) -> Self {
        self.bind(&p.source_system).bind(p.source_file_id).bind(p.import_batch_id).bind(&p.by)
    }
}

/// A person's fields.
#[derive(Debug, Clone, Default)]
pub struct PersonRow {
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: String,
    pub nickname: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub notes: Option<String>,
}

/// The file version a batch was staged from.
pub async fn batch_file(tx: &mut TenantTx, import_batch_id: Uuid) -> Result<(Uuid, i32), StoreError> {
    sqlx::query_as(
        "SELECT file_id, file_version FROM qinexus.import_files WHERE import_batch_id = $1 ORDER BY created_at LIMIT 1",
    )
    .bind(import_batch_id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)
}

/// Locks the batch row so that two promotions of one batch run one after the other.
pub async fn lock_batch(tx: &mut TenantTx, import_batch_id: Uuid) -> Result<String, StoreError> {
    sqlx::query_scalar("SELECT status FROM qinexus.import_batches WHERE id = $1 FOR UPDATE")
        .bind(import_batch_id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

async fn insert_entity(tx: &mut TenantTx, kind: &str, display_name: &str, p: &Provenance) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO core.entities (id, tenant_id, entity_kind, display_name, source_system, source_file_id, \
                                    import_batch_id, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(tx.tenant().as_uuid())
    .bind(kind)
    .bind(display_name)
    .stamped(p)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "entity"))?;
    Ok(id)
}

pub async fn create_person(tx: &mut TenantTx, f: &PersonRow, p: &Provenance) -> Result<Uuid, StoreError> {
    let id = insert_entity(tx, "person", &f.full_name, p).await?;
    sqlx::query(
        "INSERT INTO core.people (id, tenant_id, given_name, middle_name, family_name, full_name, nickname, birth_date, \
                                  notes, source_system, source_file_id, import_batch_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(tx.tenant().as_uuid())
    .bind(&f.given_name)
    .bind(&f.middle_name)
    .bind(&f.family_name)
    .bind(&f.full_name)
    .bind(&f.nickname)
    .bind(f.birth_date)
    .bind(&f.notes)
    .stamped(p)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "person"))?;
    Ok(id)
}

/// Merges a person's fields into an existing person: only empty fields are filled, nothing the
/// record already says is overwritten. Returns false when the entity is not a person.
pub async fn fill_person(tx: &mut TenantTx, id: Uuid, f: &PersonRow, by: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE core.people SET given_name = coalesce(given_name, $2), middle_name = coalesce(middle_name, $3), \
                family_name = coalesce(family_name, $4), nickname = coalesce(nickname, $5), \
                birth_date = coalesce(birth_date, $6), notes = coalesce(notes, $7), updated_by = $8 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&f.given_name)
    .bind(&f.middle_name)
    .bind(&f.family_name)
    .bind(&f.nickname)
    .bind(f.birth_date)
    .bind(&f.notes)
    .bind(by)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The kind of an active entity, when it exists.
pub async fn entity_kind(tx: &mut TenantTx, id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT entity_kind FROM core.entities WHERE id = $1 AND status = 'active'")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

/// The active organization with this name (case-insensitive), or a new one; true when created.
pub async fn ensure_organization(tx: &mut TenantTx, name: &str, p: &Provenance) -> Result<(Uuid, bool), StoreError> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT o.id FROM core.organizations o WHERE lower(o.legal_name) = lower($1) AND o.status = 'active' \
         ORDER BY o.created_at LIMIT 1",
    )
    .bind(name)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(id) = found {
        return Ok((id, false));
    }
    let id = insert_entity(tx, "organization", name, p).await?;
    sqlx::query(
        "INSERT INTO core.organizations (id, tenant_id, legal_name, source_system, source_file_id, import_batch_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(tx.tenant().as_uuid())
    .bind(name)
    .stamped(p)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "organization"))?;
    Ok((id, true))
}

/// An identifier on an entity; `None` when the entity already had it.
#[allow(clippy::too_many_arguments)]
pub async fn add_identifier(
    tx: &mut TenantTx,
    entity_id: Uuid,
    kind: &str,
    value: &str,
    normalized: &str,
    label: Option<&str>,
    is_primary: bool,
    p: &Provenance,
) -> Result<Option<Uuid>, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO core.identifiers (tenant_id, entity_id, identifier_kind, value, normalized_value, label, is_primary, \
                                       source_system, source_file_id, import_batch_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, \
                 $7 AND NOT EXISTS (SELECT 1 FROM core.identifiers WHERE entity_id = $2 AND identifier_kind = $3 AND is_primary), \
                 $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, entity_id, identifier_kind, normalized_value) DO NOTHING RETURNING id",
    )
    .bind(tx.tenant().as_uuid())
    .bind(entity_id)
    .bind(kind)
    .bind(value)
    .bind(normalized)
    .bind(label)
    .bind(is_primary)
    .stamped(p)
    .fetch_optional(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "identifier"))
}

/// A typed relationship between two entities, unless an active one of that type exists.
pub async fn ensure_relationship(
    tx: &mut TenantTx,
    source: Uuid,
    target: Uuid,
    relationship_type: &str,
    notes: Option<&str>,
    p: &Provenance,
) -> Result<Option<Uuid>, StoreError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM core.relationships WHERE source_entity_id = $1 AND target_entity_id = $2 \
                        AND relationship_type = $3 AND status = 'active')",
    )
    .bind(source)
    .bind(target)
    .bind(relationship_type)
    .fetch_one(tx.conn())
    .await?;
    if exists {
        return Ok(None);
    }
    Ok(Some(
        sqlx::query_scalar(
            "INSERT INTO core.relationships (tenant_id, source_entity_id, target_entity_id, relationship_type, notes, \
                                             source_system, source_file_id, import_batch_id, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(tx.tenant().as_uuid())
        .bind(source)
        .bind(target)
        .bind(relationship_type)
        .bind(notes)
        .stamped(p)
        .fetch_one(tx.conn())
        .await
        .map_err(|e| StoreError::on_constraint(e, "relationship"))?,
    ))
}

/// Records the source system's id for an entity; `None` when it was already recorded (for this
/// or, after a merge, another entity).
pub async fn add_external_id(
    tx: &mut TenantTx,
    entity_id: Uuid,
    system: &str,
    external_id: &str,
    p: &Provenance,
) -> Result<Option<Uuid>, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO qiconnect.external_ids (tenant_id, entity_id, external_system, external_id, source_system, \
                                             source_file_id, import_batch_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id, external_system, external_id) DO NOTHING RETURNING id",
    )
    .bind(tx.tenant().as_uuid())
    .bind(entity_id)
    .bind(system)
    .bind(external_id)
    .stamped(p)
    .fetch_optional(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "external id"))
}

/// A provenance link from a canonical record to the staged row (idempotent).
pub async fn link(
    tx: &mut TenantTx,
    record_table: &str,
    record_id: Uuid,
    role: &str,
    p: &Provenance,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO qinexus.source_entity_links (tenant_id, record_table, record_id, import_row_id, import_batch_id, \
                                                  source_file_id, file_version, link_role, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (record_table, record_id, import_row_id) DO NOTHING",
    )
    .bind(tx.tenant().as_uuid())
    .bind(record_table)
    .bind(record_id)
    .bind(p.import_row_id)
    .bind(p.import_batch_id)
    .bind(p.source_file_id)
    .bind(p.file_version)
    .bind(role)
    .bind(&p.by)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "source link"))?;
    Ok(())
}

/// Marks a row promoted into `entity_id`.
pub async fn mark_promoted(tx: &mut TenantTx, row_id: Uuid, entity_id: Option<Uuid>) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE staging.import_rows SET review_status = CASE WHEN $2::uuid IS NULL THEN 'skipped' ELSE 'promoted' END, \
                promoted_entity_id = $2 WHERE id = $1",
    )
    .bind(row_id)
    .bind(entity_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets the batch to `promoted` when no row waits for review or promotion any more.
pub async fn close_batch_if_done(tx: &mut TenantTx, import_batch_id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE qinexus.import_batches b SET status = 'promoted' WHERE b.id = $1 \
           AND NOT EXISTS (SELECT 1 FROM staging.import_rows r WHERE r.import_batch_id = $1 \
                           AND r.review_status IN ('pending', 'approved') AND r.proposed_action IS NOT NULL)",
    )
    .bind(import_batch_id)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}
