//! Bulk load of parsed rows into `staging.import_rows` with `COPY ... FROM STDIN`, inside the
//! caller's tenant transaction.
//!
//! PostgreSQL refuses `COPY FROM` into a table with row-level security for a role it applies to
//! (`spine_app`), so rows are COPYed (binary format) into a transaction-local temp table in
//! chunks, and each chunk moves into `staging.import_rows` with one `INSERT ... SELECT`, where
//! the tenant policy's WITH CHECK and the per-statement reference check (decision 0020) apply.
//! Nothing is visible until the caller commits; a failure anywhere leaves the transaction to roll
//! back whole.
//!
//! Rows are encoded by a [`RowEncoder`], which a caller may run on another thread (the staging
//! pipeline encodes on its parser thread) and hand over as [`EncodedRows`]. The encoder gives
//! every row a version 7 UUID, so ids ascend in load order and the primary key index is appended
//! to instead of written at random places.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{StoreError, TenantTx};

/// Bytes of COPY data [`StagingCopy::push`] buffers before it sends them.
pub const COPY_CHUNK_BYTES: usize = 1024 * 1024;
/// COPY data after which the temp table's rows move into `staging.import_rows`. Small enough for
/// the temp table to stay in PostgreSQL's default `temp_buffers` (8 MB: past it, every chunk is
/// written out to disk and read back) and for the reference check's transition table to stay
/// near `work_mem`; large enough for the per-statement costs not to count (bench/README.md).
const MOVE_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Columns of the temp table, in COPY order.
const COPY_COLUMNS: i16 = 5;
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

/// Encodes rows as binary COPY tuples for [`StagingCopy`], with their ids. Synchronous: it can
/// run on the thread that parses.
pub struct RowEncoder {
    buf: Vec<u8>,
    counts: StagingCounts,
    ids: IdGen,
}

impl Default for RowEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RowEncoder {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(COPY_CHUNK_BYTES + 64 * 1024),
            counts: StagingCounts::default(),
            ids: IdGen::new(),
        }
    }

    /// Appends one row. Fails (and appends nothing) when the row number is 0 or above `i32::MAX`.
    pub fn encode(&mut self, row: &ImportRow) -> Result<(), StoreError> {
        match row {
            ImportRow::Parsed { row_number, payload } => self.append(*row_number, true, |buf| {
                write_payload(buf, |buf| write_object(buf, payload).map_err(|e| StoreError::Invalid(e.to_string())))
            }),
            ImportRow::Failed { row_number, raw_text, error } => {
                self.append(*row_number, false, |buf| write_failure(buf, raw_text, error))
            }
        }
    }

    /// Appends one parsed row whose payload `write` appends to the buffer: exactly one JSON
    /// object, UTF-8 without NUL, ideally with its keys in jsonb's order (see [`jsonb_key_order`]).
    /// For parsers that can write rows straight from their input, without building a
    /// [`Map`] first (the CSV parser does); same checks as [`RowEncoder::encode`].
    pub fn encode_json_with(&mut self, row_number: u32, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), StoreError> {
        self.append(row_number, true, |buf| {
            write_payload(buf, |buf| {
                write(buf);
                Ok(())
            })
        })
    }

    fn append(
        &mut self,
        row_number: u32,
        parsed: bool,
        fields: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let n = match i32::try_from(row_number) {
            Ok(n) if n > 0 => n,
            _ => return Err(StoreError::Invalid(format!("row number {row_number} out of range"))),
        };
        let start = self.buf.len();
        let buf = &mut self.buf;
        buf.extend_from_slice(&COPY_COLUMNS.to_be_bytes());
        buf.extend_from_slice(&16i32.to_be_bytes());
        buf.extend_from_slice(self.ids.next().as_bytes());
        buf.extend_from_slice(&4i32.to_be_bytes());
        buf.extend_from_slice(&n.to_be_bytes());
        if let Err(e) = fields(buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        if parsed {
            self.counts.rows_ok += 1;
        } else {
            self.counts.rows_error += 1;
        }
        self.counts.rows_total += 1;
        Ok(())
    }

    /// Bytes encoded and not yet taken.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Hands over what was encoded since the last call.
    pub fn take(&mut self) -> EncodedRows {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(COPY_CHUNK_BYTES + 64 * 1024));
        EncodedRows { data, counts: std::mem::take(&mut self.counts) }
    }
}

/// Rows encoded by a [`RowEncoder`], ready for [`StagingCopy::push_encoded`].
#[derive(Debug, Default)]
pub struct EncodedRows {
    data: Vec<u8>,
    counts: StagingCounts,
}

impl EncodedRows {
    pub fn counts(&self) -> StagingCounts {
        self.counts
    }

    /// The binary COPY tuples (no header or trailer).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Bytes of COPY data.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A COPY load in progress. Push rows, then [`StagingCopy::finish`]; dropping it unfinished
/// leaves already-moved rows in the transaction, which the caller then rolls back.
pub struct StagingCopy<'t> {
    tx: &'t mut TenantTx,
    batch: Uuid,
    file: Uuid,
    encoder: RowEncoder,
    /// COPY data in the temp table that has not moved yet.
    pending_bytes: usize,
    counts: StagingCounts,
}

impl<'t> StagingCopy<'t> {
    /// Prepares the transaction-local temp table.
    pub async fn begin(tx: &'t mut TenantTx, import_batch_id: Uuid, source_file_id: Uuid) -> Result<Self, StoreError> {
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS spine_staging_rows \
             (id uuid NOT NULL, row_number integer NOT NULL, raw_payload jsonb, raw_text text, parse_error text) \
             ON COMMIT DROP",
        )
        .execute(tx.conn())
        .await?;
        sqlx::query("TRUNCATE pg_temp.spine_staging_rows").execute(tx.conn()).await?;
        Ok(Self {
            tx,
            batch: import_batch_id,
            file: source_file_id,
            encoder: RowEncoder::new(),
            pending_bytes: 0,
            counts: StagingCounts::default(),
        })
    }

    /// Adds one row; sends COPY data and moves rows as the buffers fill.
    pub async fn push(&mut self, row: &ImportRow) -> Result<(), StoreError> {
        self.encoder.encode(row)?;
        if self.encoder.len() >= COPY_CHUNK_BYTES {
            let chunk = self.encoder.take();
            self.push_encoded(chunk).await?;
        }
        Ok(())
    }

    /// Sends rows encoded elsewhere (in order with any [`StagingCopy::push`]ed before them).
    pub async fn push_encoded(&mut self, chunk: EncodedRows) -> Result<(), StoreError> {
        if !self.encoder.is_empty() {
            let mine = self.encoder.take();
            self.send(mine).await?;
        }
        self.send(chunk).await?;
        if self.pending_bytes >= MOVE_CHUNK_BYTES {
            self.move_rows().await?;
        }
        Ok(())
    }

    /// Sends what is buffered, moves the rest and returns the counts.
    pub async fn finish(mut self) -> Result<StagingCounts, StoreError> {
        let rest = self.encoder.take();
        self.send(rest).await?;
        self.move_rows().await?;
        Ok(self.counts)
    }

    async fn send(&mut self, chunk: EncodedRows) -> Result<(), StoreError> {
        if chunk.data.is_empty() {
            return Ok(());
        }
        let mut copy = self.tx.conn().copy_in_raw("COPY pg_temp.spine_staging_rows FROM STDIN (FORMAT binary)").await?;
        for part in [COPY_HEADER, chunk.data.as_slice(), COPY_TRAILER] {
            if let Err(e) = copy.send(part).await {
                let _ = copy.abort("send failed").await;
                return Err(e.into());
            }
        }
        copy.finish().await?;
        self.pending_bytes += chunk.data.len();
        self.counts.add(chunk.counts);
        Ok(())
    }

    async fn move_rows(&mut self) -> Result<(), StoreError> {
        if self.pending_bytes == 0 {
            return Ok(());
        }
        let tenant = self.tx.tenant();
        sqlx::query(
            "INSERT INTO staging.import_rows \
               (id, tenant_id, import_batch_id, source_file_id, row_number, raw_payload, raw_text, parse_error, review_status) \
             SELECT id, $1, $2, $3, row_number, raw_payload, raw_text, parse_error, \
                    CASE WHEN parse_error IS NULL THEN 'pending' ELSE 'error' END \
             FROM pg_temp.spine_staging_rows",
        )
        .bind(tenant.as_uuid())
        .bind(self.batch)
        .bind(self.file)
        .execute(self.tx.conn())
        .await
        .map_err(|e| StoreError::on_constraint(e, "staged row"))?;
        sqlx::query("TRUNCATE pg_temp.spine_staging_rows").execute(self.tx.conn()).await?;
        self.pending_bytes = 0;
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

/// The last three fields of a parsed row's tuple: raw_payload (jsonb's binary form: a version
/// byte, then the JSON text `write` appends), and NULL raw_text and parse_error.
fn write_payload(
    buf: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let at = begin_field(buf);
    buf.push(1);
    write(buf)?;
    end_field(buf, at)?;
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    Ok(())
}

/// The last three fields of a failed row's tuple: NULL raw_payload, raw_text and parse_error.
fn write_failure(buf: &mut Vec<u8>, raw_text: &str, error: &str) -> Result<(), StoreError> {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    for text in [raw_text, error] {
        let at = begin_field(buf);
        push_text(buf, text.as_bytes());
        end_field(buf, at)?;
    }
    Ok(())
}

/// jsonb's order of object keys: shorter first, then by bytes.
pub fn jsonb_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The payload as a JSON object with its keys in jsonb's order (shorter keys first, then by
/// bytes). jsonb sorts every object's keys when it parses one; keys that arrive sorted cost it
/// one pass instead of a sort, which is a tenth of the server's work for a 10-column CSV
/// (bench/README.md). The stored value is the same either way.
fn write_object(buf: &mut Vec<u8>, payload: &Map<String, Value>) -> serde_json::Result<()> {
    let mut entries: Vec<(&String, &Value)> = payload.iter().collect();
    entries.sort_unstable_by(|a, b| jsonb_key_order(a.0, b.0));
    buf.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        serde_json::to_writer(&mut *buf, key)?;
        buf.push(b':');
        serde_json::to_writer(&mut *buf, value)?;
    }
    buf.push(b'}');
    Ok(())
}

/// Reserves a field's length word; [`end_field`] fills it in.
fn begin_field(buf: &mut Vec<u8>) -> usize {
    buf.extend_from_slice(&[0; 4]);
    buf.len()
}

fn end_field(buf: &mut [u8], at: usize) -> Result<(), StoreError> {
    let len = i32::try_from(buf.len() - at).map_err(|_| StoreError::Invalid("staged value over 2 GiB".into()))?;
    buf[at - 4..at].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Text for PostgreSQL, which cannot hold a NUL byte: each NUL becomes U+FFFD.
fn push_text(buf: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, _) in s.iter().enumerate().filter(|(_, b)| **b == 0) {
        buf.extend_from_slice(&s[start..i]);
        buf.extend_from_slice("\u{FFFD}".as_bytes());
        start = i + 1;
    }
    buf.extend_from_slice(&s[start..]);
}

/// Version 7 UUIDs (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter within the
/// millisecond (method 1 of the RFC's section 6.2), 62 bits from a generator seeded from the OS.
/// Strictly ascending per generator (a counter overflow borrows the next millisecond, and the
/// clock going back is ignored), so unique per generator; across generators the random bits
/// keep them apart, and v4 ids (the table's default) never collide with them.
struct IdGen {
    last_ms: u64,
    counter: u16,
    state: u64,
}

impl IdGen {
    fn new() -> Self {
        let seed = Uuid::new_v4().as_u64_pair();
        Self { last_ms: 0, counter: 0, state: seed.0 ^ seed.1.rotate_left(32) }
    }

    fn next(&mut self) -> Uuid {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        if now > self.last_ms {
            self.last_ms = now;
            self.counter = 0;
        } else if self.counter < 0xfff {
            self.counter += 1;
        } else {
            self.last_ms += 1;
            self.counter = 0;
        }
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let v = (u128::from(self.last_ms & 0xffff_ffff_ffff) << 80)
            | (0x7 << 76)
            | (u128::from(self.counter) << 64)
            | (0b10 << 62)
            | u128::from(z >> 2);
        Uuid::from_u128(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(mut b: &[u8]) -> Vec<Option<Vec<u8>>> {
        let n = i16::from_be_bytes([b[0], b[1]]);
        b = &b[2..];
        let mut out = Vec::new();
        for _ in 0..n {
            let len = i32::from_be_bytes(b[..4].try_into().unwrap());
            b = &b[4..];
            if len < 0 {
                out.push(None);
            } else {
                out.push(Some(b[..len as usize].to_vec()));
                b = &b[len as usize..];
            }
        }
        assert!(b.is_empty(), "one tuple exactly");
        out
    }

    #[test]
    fn binary_tuples() {
        let mut enc = RowEncoder::new();
        let row = ImportRow::Failed { row_number: 3, raw_text: "x\ty\0z".into(), error: "bad".into() };
        enc.encode(&row).unwrap();
        let chunk = enc.take();
        assert_eq!(chunk.counts(), StagingCounts { rows_total: 1, rows_ok: 0, rows_error: 1 });
        let f = fields(&chunk.data);
        assert_eq!(f.len(), 5);
        assert_eq!(Uuid::from_slice(f[0].as_deref().unwrap()).unwrap().get_version_num(), 7);
        assert_eq!(f[1].as_deref(), Some(&3i32.to_be_bytes()[..]));
        assert_eq!(f[2], None);
        assert_eq!(f[3].as_deref(), Some("x\ty\u{FFFD}z".as_bytes()), "NUL becomes U+FFFD");
        assert_eq!(f[4].as_deref(), Some(&b"bad"[..]));

        let mut payload = Map::new();
        payload.insert("k".into(), Value::String("a\"\\\n".into()));
        enc.encode(&ImportRow::Parsed { row_number: 1, payload }).unwrap();
        let f = fields(&enc.take().data);
        assert_eq!(f[2].as_deref(), Some(&b"\x01{\"k\":\"a\\\"\\\\\\n\"}"[..]));
        assert_eq!((f[3].as_deref(), f[4].as_deref()), (None, None));

        let payload = serde_json::json!({"bb": "1", "a": {"z": 1, "y": [2]}, "ab": null, "c": "é"});
        let row = ImportRow::Parsed { row_number: 2, payload: payload.as_object().cloned().unwrap() };
        enc.encode(&row).unwrap();
        let f = fields(&enc.take().data);
        let text = std::str::from_utf8(&f[2].as_deref().unwrap()[1..]).unwrap();
        assert_eq!(text, r#"{"a":{"y":[2],"z":1},"c":"é","ab":null,"bb":"1"}"#, "jsonb's key order");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), payload);
    }

    #[test]
    fn row_numbers_out_of_range_are_refused() {
        let mut enc = RowEncoder::new();
        for n in [0, i32::MAX as u32 + 1] {
            let row = ImportRow::Failed { row_number: n, raw_text: String::new(), error: "e".into() };
            assert!(enc.encode(&row).is_err());
        }
        assert!(enc.is_empty());
    }

    #[test]
    fn ids_ascend() {
        let mut ids = IdGen::new();
        let mut last = ids.next();
        for _ in 0..100_000 {
            let id = ids.next();
            assert!(id > last, "{id} after {last}");
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            last = id;
        }
    }
}
