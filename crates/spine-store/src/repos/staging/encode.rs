//! Rows as binary COPY tuples for `staging.import_rows`: ids, references, payloads written as
//! JSON text, error rows with their raw text.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{COPY_CHUNK_BYTES, COPY_COLUMNS, ImportRow, StagingCounts};
use crate::{StoreError, TenantTx};

/// Where a load's rows go: every row carries these three references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagingTarget {
    pub tenant_id: Uuid,
    pub import_batch_id: Uuid,
    pub source_file_id: Uuid,
}

impl StagingTarget {
    /// A load into `tx`'s tenant.
    pub fn of(tx: &TenantTx, import_batch_id: Uuid, source_file_id: Uuid) -> Self {
        Self { tenant_id: tx.tenant().as_uuid(), import_batch_id, source_file_id }
    }
}

/// Encodes rows as binary COPY tuples for [`StagingCopy`], with their ids and the target's
/// references. Synchronous: it can run on the thread that parses.
pub struct RowEncoder {
    buf: Vec<u8>,
    counts: StagingCounts,
    ids: IdGen,
    pub(super) target: StagingTarget,
}

impl RowEncoder {
    pub fn new(target: StagingTarget) -> Self {
        Self {
            buf: Vec::with_capacity(COPY_CHUNK_BYTES + 64 * 1024),
            counts: StagingCounts::default(),
            ids: IdGen::new(),
            target,
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
    /// object, UTF-8 without NUL, with its keys in jsonb's order (see [`jsonb_key_order`]).
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
        let t = &self.target;
        for id in [self.ids.next(), t.tenant_id, t.import_batch_id, t.source_file_id] {
            buf.extend_from_slice(&16i32.to_be_bytes());
            buf.extend_from_slice(id.as_bytes());
        }
        buf.extend_from_slice(&4i32.to_be_bytes());
        buf.extend_from_slice(&n.to_be_bytes());
        if let Err(e) = fields(buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let status: &[u8] = if parsed { b"pending" } else { b"error" };
        self.buf.extend_from_slice(&(status.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(status);
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
        EncodedRows { data, counts: std::mem::take(&mut self.counts), target: self.target }
    }
}

/// Rows encoded by a [`RowEncoder`], ready for [`StagingCopy::push_encoded`].
#[derive(Debug)]
pub struct EncodedRows {
    pub(super) data: Vec<u8>,
    pub(super) counts: StagingCounts,
    pub(super) target: StagingTarget,
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

/// A parsed row's raw_payload (json's binary form is its text, which `write` appends), and NULL
/// raw_text and parse_error.
fn write_payload(
    buf: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let at = begin_field(buf);
    write(buf)?;
    end_field(buf, at)?;
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    Ok(())
}

/// A failed row's NULL raw_payload, raw_text and parse_error.
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
/// bytes): the order raw_payload had while it was jsonb (decision 0031), so a row reads the same
/// whichever parser path wrote it and whenever it was staged.
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
        let target = StagingTarget {
            tenant_id: Uuid::new_v4(),
            import_batch_id: Uuid::new_v4(),
            source_file_id: Uuid::new_v4(),
        };
        let mut enc = RowEncoder::new(target);
        let row = ImportRow::Failed { row_number: 3, raw_text: "x\ty\0z".into(), error: "bad".into() };
        enc.encode(&row).unwrap();
        let chunk = enc.take();
        assert_eq!(chunk.counts(), StagingCounts { rows_total: 1, rows_ok: 0, rows_error: 1 });
        let f = fields(&chunk.data);
        assert_eq!(f.len(), COPY_COLUMNS as usize);
        assert_eq!(Uuid::from_slice(f[0].as_deref().unwrap()).unwrap().get_version_num(), 7);
        let refs: Vec<Uuid> = f[1..4].iter().map(|b| Uuid::from_slice(b.as_deref().unwrap()).unwrap()).collect();
        assert_eq!(refs, [target.tenant_id, target.import_batch_id, target.source_file_id]);
        assert_eq!(f[4].as_deref(), Some(&3i32.to_be_bytes()[..]));
        assert_eq!(f[5], None);
        assert_eq!(f[6].as_deref(), Some("x\ty\u{FFFD}z".as_bytes()), "NUL becomes U+FFFD");
        assert_eq!(f[7].as_deref(), Some(&b"bad"[..]));
        assert_eq!(f[8].as_deref(), Some(&b"error"[..]));

        let mut payload = Map::new();
        payload.insert("k".into(), Value::String("a\"\\\n".into()));
        enc.encode(&ImportRow::Parsed { row_number: 1, payload }).unwrap();
        let f = fields(&enc.take().data);
        assert_eq!(f[5].as_deref(), Some(&b"{\"k\":\"a\\\"\\\\\\n\"}"[..]));
        assert_eq!((f[6].as_deref(), f[7].as_deref()), (None, None));
        assert_eq!(f[8].as_deref(), Some(&b"pending"[..]));

        let payload = serde_json::json!({"bb": "1", "a": {"z": 1, "y": [2]}, "ab": null, "c": "é"});
        let row = ImportRow::Parsed { row_number: 2, payload: payload.as_object().cloned().unwrap() };
        enc.encode(&row).unwrap();
        let f = fields(&enc.take().data);
        let text = std::str::from_utf8(f[5].as_deref().unwrap()).unwrap();
        assert_eq!(text, r#"{"a":{"y":[2],"z":1},"c":"é","ab":null,"bb":"1"}"#, "jsonb's key order");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), payload);
    }

    #[test]
    fn row_numbers_out_of_range_are_refused() {
        let mut enc = RowEncoder::new(StagingTarget {
            tenant_id: Uuid::nil(),
            import_batch_id: Uuid::nil(),
            source_file_id: Uuid::nil(),
        });
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
