//! Bulk load of parsed rows into `staging.import_rows` with `COPY ... FROM STDIN`, inside the
//! caller's tenant transaction.
//!
//! PostgreSQL refuses `COPY FROM` into a table with row-level security for a role it applies to
//! (`spine_app`), so rows are COPYed (text format) into a transaction-local temp table in
//! chunks, and each chunk moves into `staging.import_rows` with one `INSERT ... SELECT`, where
//! the tenant policy's WITH CHECK and the composite foreign keys apply. Nothing is visible
//! until the caller commits; a failure anywhere leaves the transaction to roll back whole.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{StoreError, TenantTx};

/// Bytes of COPY data sent per `COPY` statement.
const COPY_CHUNK_BYTES: usize = 1024 * 1024;
/// Rows moved from the temp table per `INSERT ... SELECT`.
const MOVE_CHUNK_ROWS: u64 = 100_000;

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

/// A COPY load in progress. Push rows, then [`StagingCopy::finish`]; dropping it unfinished
/// leaves already-moved rows in the transaction, which the caller then rolls back.
pub struct StagingCopy<'t> {
    tx: &'t mut TenantTx,
    batch: Uuid,
    file: Uuid,
    buf: Vec<u8>,
    pending_rows: u64,
    counts: StagingCounts,
}

impl<'t> StagingCopy<'t> {
    /// Prepares the transaction-local temp table.
    pub async fn begin(tx: &'t mut TenantTx, import_batch_id: Uuid, source_file_id: Uuid) -> Result<Self, StoreError> {
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS spine_staging_copy \
             (row_number integer NOT NULL, raw_payload jsonb, raw_text text, parse_error text) ON COMMIT DROP",
        )
        .execute(tx.conn())
        .await?;
        sqlx::query("TRUNCATE pg_temp.spine_staging_copy").execute(tx.conn()).await?;
        Ok(Self {
            tx,
            batch: import_batch_id,
            file: source_file_id,
            buf: Vec::with_capacity(COPY_CHUNK_BYTES + 64 * 1024),
            pending_rows: 0,
            counts: StagingCounts::default(),
        })
    }

    /// Adds one row; sends COPY data and moves rows as the buffers fill.
    pub async fn push(&mut self, row: &ImportRow) -> Result<(), StoreError> {
        encode_row(&mut self.buf, row)?;
        self.pending_rows += 1;
        self.counts.rows_total += 1;
        match row {
            ImportRow::Parsed { .. } => self.counts.rows_ok += 1,
            ImportRow::Failed { .. } => self.counts.rows_error += 1,
        }
        if self.buf.len() >= COPY_CHUNK_BYTES {
            self.send().await?;
            if self.pending_rows >= MOVE_CHUNK_ROWS {
                self.move_rows().await?;
            }
        }
        Ok(())
    }

    /// Sends what is buffered, moves the rest and returns the counts.
    pub async fn finish(mut self) -> Result<StagingCounts, StoreError> {
        self.send().await?;
        self.move_rows().await?;
        Ok(self.counts)
    }

    async fn send(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut copy = self.tx.conn().copy_in_raw("COPY pg_temp.spine_staging_copy FROM STDIN").await?;
        if let Err(e) = copy.send(self.buf.as_slice()).await {
            let _ = copy.abort("send failed").await;
            return Err(e.into());
        }
        copy.finish().await?;
        self.buf.clear();
        Ok(())
    }

    async fn move_rows(&mut self) -> Result<(), StoreError> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        let tenant = self.tx.tenant();
        sqlx::query(
            "INSERT INTO staging.import_rows \
               (tenant_id, import_batch_id, source_file_id, row_number, raw_payload, raw_text, parse_error, review_status) \
             SELECT $1, $2, $3, row_number, raw_payload, raw_text, parse_error, \
                    CASE WHEN parse_error IS NULL THEN 'pending' ELSE 'error' END \
             FROM pg_temp.spine_staging_copy",
        )
        .bind(tenant.as_uuid())
        .bind(self.batch)
        .bind(self.file)
        .execute(self.tx.conn())
        .await
        .map_err(|e| StoreError::on_constraint(e, "staged row"))?;
        sqlx::query("TRUNCATE pg_temp.spine_staging_copy").execute(self.tx.conn()).await?;
        self.pending_rows = 0;
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

/// One line of COPY text format: row_number, raw_payload, raw_text, parse_error.
fn encode_row(buf: &mut Vec<u8>, row: &ImportRow) -> Result<(), StoreError> {
    let (n, invalid) = match row {
        ImportRow::Parsed { row_number, .. } | ImportRow::Failed { row_number, .. } => {
            (*row_number, *row_number == 0 || *row_number > i32::MAX as u32)
        }
    };
    if invalid {
        return Err(StoreError::Invalid(format!("row number {n} out of range")));
    }
    buf.extend_from_slice(n.to_string().as_bytes());
    buf.push(b'\t');
    match row {
        ImportRow::Parsed { payload, .. } => {
            serde_json::to_writer(CopyEscape(buf), payload).map_err(|e| StoreError::Invalid(e.to_string()))?;
            buf.extend_from_slice(b"\t\\N\t\\N\n");
        }
        ImportRow::Failed { raw_text, error, .. } => {
            buf.extend_from_slice(b"\\N\t");
            escape_into(buf, raw_text.as_bytes());
            buf.push(b'\t');
            escape_into(buf, error.as_bytes());
            buf.push(b'\n');
        }
    }
    Ok(())
}

/// COPY text escaping: backslash, tab, newline and carriage return; a NUL byte (which no
/// PostgreSQL text can hold) becomes U+FFFD.
fn escape_into(buf: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let rep: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => "\u{FFFD}".as_bytes(),
            _ => continue,
        };
        buf.extend_from_slice(&s[start..i]);
        buf.extend_from_slice(rep);
        start = i + 1;
    }
    buf.extend_from_slice(&s[start..]);
}

/// Escapes serde_json's output for COPY text format as it is written.
struct CopyEscape<'b>(&'b mut Vec<u8>);

impl std::io::Write for CopyEscape<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        escape_into(self.0, data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_specials() {
        let mut buf = Vec::new();
        escape_into(&mut buf, b"a\\b\tc\nd\re\0f");
        assert_eq!(String::from_utf8(buf).unwrap(), "a\\\\b\\tc\\nd\\re\u{FFFD}f");
        let mut buf = Vec::new();
        let row = ImportRow::Failed { row_number: 3, raw_text: "x\ty".into(), error: "bad".into() };
        encode_row(&mut buf, &row).unwrap();
        assert_eq!(buf, b"3\t\\N\tx\\ty\tbad\n");
        let mut buf = Vec::new();
        let mut payload = Map::new();
        payload.insert("k".into(), Value::String("a\"\\\n".into()));
        encode_row(&mut buf, &ImportRow::Parsed { row_number: 1, payload }).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "1\t{\"k\":\"a\\\\\"\\\\\\\\\\\\n\"}\t\\N\t\\N\n");
    }
}
