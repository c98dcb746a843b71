//! Bulk load of parsed rows into `staging.import_rows` with `COPY ... FROM STDIN`, inside the
//! caller's tenant transaction.
//!
//! PostgreSQL refuses `COPY FROM` into a table with row-level security for a role it applies to
//! (`spine_app`, `spine_ingest`), so each COPY statement runs as the connection's own role, the
//! tables' owner (decision 0002): `SET LOCAL ROLE NONE` before it and the transaction's role
//! again after it, with nothing else in between but the statement's own `work_mem` (raised for
//! it and put back after it; decision 0032). The table's reference check (decision 0020)
//! still runs for every statement, and checks that every row's tenant is the transaction's
//! (decision 0031), which is what the tenant policy's WITH CHECK did on the way the rows took
//! before (a temp table and `INSERT ... SELECT`). A failed COPY aborts the transaction, so the
//! owner's role never outlives the statement in a transaction that goes on. Nothing is visible
//! until the caller commits; a failure anywhere leaves the transaction to roll back whole.
//!
//! Rows are encoded by a [`RowEncoder`], which a caller may run on another thread (the staging
//! pipeline encodes on its parser thread) and hand over as [`EncodedRows`]. The encoder gives
//! every row a version 7 UUID, so ids ascend in load order and the primary key index is appended
//! to instead of written at random places.

mod encode;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{StoreError, TenantTx};

pub use encode::{EncodedRows, RowEncoder, StagingTarget, jsonb_key_order};

/// Bytes of COPY data per COPY statement ([`StagingCopy::push`] buffers this much before it
/// sends). Large enough for the per-statement costs (PostgreSQL makes up to 1,000 tuple slots
/// for every COPY statement, and the reference check runs once per statement) not to count; the
/// statement's transition table then needs [`COPY_WORK_MEM`] (bench/README.md, decision 0032).
pub const COPY_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// `work_mem` while a COPY statement runs: the reference check's transition table holds the
/// statement's rows (about 1.6 bytes of memory per byte of COPY data) and is written to a temp
/// file once it passes `work_mem`, which at PostgreSQL's default of 4 MB a 3 MiB statement
/// already did. Set for the statement only; the transaction's own value is put back after it.
const COPY_WORK_MEM: &str = "32MB";
/// The COPY statement; its columns are the tuples' fields, in order.
const COPY_SQL: &str = "COPY staging.import_rows (id, tenant_id, import_batch_id, source_file_id, row_number, \
                        raw_payload, raw_text, parse_error, review_status) FROM STDIN (FORMAT binary)";
const COPY_COLUMNS: i16 = 9;
/// Binary COPY header: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Binary COPY trailer: a field count of -1.
const COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// One row to stage: a parsed object, or the raw text of a row that failed with its reason.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportRow {
    Parsed { row_number: u32, payload: Map<String, Value> },
    Failed { row_number: u32, raw_text: String, error: String },
}

/// What a load wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StagingCounts {
    pub rows_total: u64,
    pub rows_ok: u64,
    pub rows_error: u64,
}

impl StagingCounts {
    fn add(&mut self, other: StagingCounts) {
        self.rows_total += other.rows_total;
        self.rows_ok += other.rows_ok;
        self.rows_error += other.rows_error;
    }
}

/// A COPY load in progress. Push rows, then [`StagingCopy::finish`]; dropping it unfinished
/// leaves already-sent rows in the transaction, which the caller then rolls back.
pub struct StagingCopy<'t> {
    tx: &'t mut TenantTx,
    encoder: RowEncoder,
    counts: StagingCounts,
    /// The transaction's `work_mem`, put back after each COPY statement; read before the first.
    work_mem: Option<String>,
}

impl<'t> StagingCopy<'t> {
    pub async fn begin(tx: &'t mut TenantTx, import_batch_id: Uuid, source_file_id: Uuid) -> Result<Self, StoreError> {
        let target = StagingTarget::of(tx, import_batch_id, source_file_id);
        Ok(Self { tx, encoder: RowEncoder::new(target), counts: StagingCounts::default(), work_mem: None })
    }

    /// Adds one row; sends COPY data as the buffer fills.
    pub async fn push(&mut self, row: &ImportRow) -> Result<(), StoreError> {
        self.encoder.encode(row)?;
        if self.encoder.len() >= COPY_CHUNK_BYTES {
            let chunk = self.encoder.take();
            self.send(chunk).await?;
        }
        Ok(())
    }

    /// Sends rows encoded elsewhere (in order with any [`StagingCopy::push`]ed before them), by
    /// an encoder made for the same [`StagingTarget`].
    pub async fn push_encoded(&mut self, chunk: EncodedRows) -> Result<(), StoreError> {
        if chunk.target != self.encoder.target {
            return Err(StoreError::Invalid("rows encoded for another batch, file or tenant".into()));
        }
        if !self.encoder.is_empty() {
            let mine = self.encoder.take();
            self.send(mine).await?;
        }
        self.send(chunk).await
    }

    /// Sends what is buffered and returns the counts.
    pub async fn finish(mut self) -> Result<StagingCounts, StoreError> {
        let rest = self.encoder.take();
        self.send(rest).await?;
        Ok(self.counts)
    }

    /// One COPY statement, as the owner (see the module's documentation).
    async fn send(&mut self, chunk: EncodedRows) -> Result<(), StoreError> {
        if chunk.data.is_empty() {
            return Ok(());
        }
        let role = self.tx.role();
        let conn = self.tx.conn();
        let work_mem = match &self.work_mem {
            Some(value) => value.clone(),
            None => {
                let value: String =
                    sqlx::query_scalar("SELECT current_setting('work_mem')").fetch_one(&mut *conn).await?;
                self.work_mem.insert(value).clone()
            }
        };
        let before = format!("SET LOCAL ROLE NONE; SET LOCAL work_mem = '{COPY_WORK_MEM}'");
        sqlx::raw_sql(sqlx::AssertSqlSafe(before)).execute(&mut *conn).await?;
        let mut copy = conn.copy_in_raw(COPY_SQL).await?;
        for part in [COPY_HEADER, chunk.data.as_slice(), COPY_TRAILER] {
            if let Err(e) = copy.send(part).await {
                let _ = copy.abort("send failed").await;
                return Err(e.into());
            }
        }
        copy.finish().await.map_err(|e| StoreError::on_constraint(e, "staged row"))?;
        let after = format!("SET LOCAL work_mem = '{}'; SET LOCAL ROLE {role}", work_mem.replace('\'', "''"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(after)).execute(&mut *conn).await?;
        self.counts.add(chunk.counts);
        Ok(())
    }
}

/// Loads all `rows` in one go (see [`StagingCopy`] for streaming).
pub async fn copy_rows(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    source_file_id: Uuid,
    rows: impl IntoIterator<Item = ImportRow>,
) -> Result<StagingCounts, StoreError> {
    let mut copy = StagingCopy::begin(tx, import_batch_id, source_file_id).await?;
    for row in rows {
        copy.push(&row).await?;
    }
    copy.finish().await
}

/// Records the outcome of staging on the batch: row counts, `status = 'staged'` and `summary`
/// merged into the batch's summary under the key `staging`.
pub async fn record_batch_summary(
    tx: &mut TenantTx,
    import_batch_id: Uuid,
    counts: StagingCounts,
    summary: &Value,
) -> Result<(), StoreError> {
    let total = i32::try_from(counts.rows_total).map_err(|_| StoreError::Invalid("too many rows".into()))?;
    let done = sqlx::query(
        "UPDATE qinexus.import_batches SET status = 'staged', rows_total = $2, rows_ok = $3, rows_error = $4, \
                summary = summary || jsonb_build_object('staging', $5::jsonb) \
         WHERE id = $1",
    )
    .bind(import_batch_id)
    .bind(total)
    .bind(counts.rows_ok as i32)
    .bind(counts.rows_error as i32)
    .bind(sqlx::types::Json(summary))
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
