//! Structured staging: CSV, JSON arrays and NDJSON become rows keyed by header, streamed from any
//! `std::io::Read` in constant memory, and bulk-loaded into `staging.import_rows` with COPY.
//!
//! The parsers are synchronous (callers run them on a blocking thread; [`stage`] does that for
//! you). Every data row comes out as a [`StagedRow`]: either a JSON object keyed by the header, or
//! a [`RowError`] that keeps the row's raw text. Nothing is dropped silently; the choices for
//! ragged rows, NUL bytes, encodings and the per-row size cap are in decision 0017
//! (docs/decisions/0017-structured-staging.md).
//!
//! - [`detect`]: byte encoding (BOM, BOM-less UTF-16, UTF-8 with a windows-1252 fallback), format
//!   and CSV delimiter, from the first 64 KiB.
//! - [`csv_rows`]: RFC 4180 records with `csv-core` (the `csv` crate's parser) over fixed buffers.
//! - [`json_rows`]: a top-level array, concatenated objects or NDJSON lines, split by a small
//!   streaming scanner and each element parsed with serde_json.
//! - [`load`]: parse on a blocking thread, feed COPY through a bounded channel.

mod csv_json;
pub mod csv_rows;
mod decode;
pub mod detect;
pub mod json_rows;
mod load;
mod parse;

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

pub use load::{StageReport, stage};
pub use parse::{RowIter, parse};

/// Default cap on one row's size in bytes (raw input for CSV and NDJSON, one element for JSON).
/// A larger row becomes an error row holding its first [`RAW_TEXT_KEEP`] bytes; it never grows
/// memory beyond the cap.
pub const DEFAULT_MAX_ROW_BYTES: usize = 16 * 1024 * 1024;
/// How much raw text an oversized row keeps.
pub const RAW_TEXT_KEEP: usize = 64 * 1024;

/// The structured formats we stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    /// A top-level array of objects, or one or more top-level objects one after another.
    Json,
    /// One JSON object per line; blank lines are skipped.
    Ndjson,
}

/// Options for [`parse`]. `Default` detects everything.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Force a format instead of detecting it from the content.
    pub format: Option<Format>,
    /// Force a CSV delimiter instead of sniffing it.
    pub delimiter: Option<u8>,
    /// Per-row size cap in bytes.
    pub max_row_bytes: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self { format: None, delimiter: None, max_row_bytes: DEFAULT_MAX_ROW_BYTES }
    }
}

/// One data row. `row_number` is 1-based over data rows (a CSV header is not counted).
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow {
    pub row_number: u32,
    pub outcome: Result<Map<String, Value>, RowError>,
}

/// A row that could not become an object: why, and its raw text (lossily decoded, NUL bytes
/// replaced by U+FFFD, at most [`RAW_TEXT_KEEP`] bytes when the row was oversized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub message: String,
    pub raw_text: String,
}

/// What a parse found. Complete once the row iterator is exhausted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseSummary {
    pub format: Format,
    /// `UTF-8`, `UTF-8 (BOM)`, `UTF-16LE`, `UTF-16BE` or `windows-1252`.
    pub encoding: String,
    /// Rows (UTF-8 input only) whose bytes were not valid UTF-8 and were read as windows-1252.
    pub fallback_rows: u64,
    /// The CSV delimiter used (`None` for JSON).
    pub delimiter: Option<char>,
    /// Column names as used as keys (deduplicated; empty for JSON and for empty input).
    pub header: Vec<String>,
    pub rows_ok: u64,
    pub rows_error: u64,
    /// True when the input held no data at all (no header, no rows).
    pub empty_input: bool,
    /// Problems that are not rows (e.g. an unclosed JSON array, trailing data).
    pub warnings: Vec<String>,
}

impl ParseSummary {
    pub(crate) fn new(format: Format, encoding: &str) -> Self {
        Self {
            format,
            encoding: encoding.to_owned(),
            fallback_rows: 0,
            delimiter: None,
            header: Vec::new(),
            rows_ok: 0,
            rows_error: 0,
            empty_input: false,
            warnings: Vec::new(),
        }
    }
}

/// Failures that stop a parse or a load (bad rows are not errors: they are rows).
#[derive(Debug, Error)]
pub enum StagingError {
    #[error("reading the input failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the CSV header row is larger than the {0}-byte row limit")]
    HeaderTooLarge(usize),
    #[error("more than {} data rows", i32::MAX)]
    TooManyRows,
    #[error("storing staged rows failed: {0}")]
    Store(#[from] spine_store::StoreError),
    #[error("the parser thread failed: {0}")]
    Join(String),
}

/// Lossy text of raw bytes for an error row: UTF-8 where valid, windows-1252 otherwise, NUL
/// bytes replaced by U+FFFD (PostgreSQL text cannot hold them), at most `keep` bytes.
pub(crate) fn raw_text(bytes: &[u8], keep: usize) -> String {
    let bytes = &bytes[..bytes.len().min(keep)];
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        // A cut at `keep` may split a UTF-8 sequence: keep the valid prefix when that is all.
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
        Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned(),
    };
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// True when any key or string in the value holds U+0000 (jsonb rejects `\u0000`).
pub(crate) fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

pub(crate) const NUL_MESSAGE: &str = "row contains NUL (U+0000), which PostgreSQL text and jsonb cannot store";
