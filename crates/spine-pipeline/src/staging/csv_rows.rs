//! CSV rows with `csv-core` (the `csv` crate's RFC 4180 parser) over buffers of bounded size:
//! quotes, doubled quotes, quoted newlines, CR / LF / CRLF line ends; blank lines are skipped.
//!
//! Decisions (0017): the first record is the header (empty names become `column_N`, repeated
//! ones `name_2`, `name_3`, …); a short row leaves its missing columns out of the object; a long
//! row whose extra fields are all empty (trailing delimiters) is kept without them, any other
//! long row is an error row with its raw text; a row with a NUL byte is an error row; a row over
//! the size cap is an error row holding its first 64 KiB.

use std::collections::HashSet;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use serde_json::{Map, Value};

use spine_store::repos::staging::{ImportRow, RowEncoder};

use super::csv_json::JsonKeys;
use super::decode::read_some;
use super::parse::Input;
use super::{NUL_MESSAGE, ParseSummary, RAW_TEXT_KEEP, RowError, StagedRow, StagingError, raw_text};

const CHUNK: usize = 64 * 1024;
/// Fields per record beyond which a record is treated as oversized.
const MAX_FIELDS: usize = 65_536;

/// A record read: its field count, or its raw size when it was over the cap.
enum Record {
    Fields(usize),
    Oversized(usize),
}

pub struct CsvRows<'a> {
    src: Input<'a>,
    core: Reader,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    out: Vec<u8>,
    ends: Vec<usize>,
    scratch: Vec<u8>,
    scratch_ends: Vec<usize>,
    raw: Vec<u8>,
    max_row: usize,
    fallback: bool,
    header: Option<Vec<String>>,
    keys: JsonKeys,
    row: u32,
    done: bool,
    summary: ParseSummary,
}

impl<'a> CsvRows<'a> {
    pub(crate) fn new(src: Input<'a>, delimiter: u8, max_row: usize, fallback: bool, summary: ParseSummary) -> Self {
        Self {
            src,
            core: ReaderBuilder::new().delimiter(delimiter).build(),
            buf: vec![0; CHUNK],
            pos: 0,
            len: 0,
            eof: false,
            out: vec![0; 1024],
            ends: vec![0; 64],
            scratch: vec![0; 4096],
            scratch_ends: vec![0; 64],
            raw: Vec::new(),
            max_row: max_row.max(1),
            fallback,
            header: None,
            keys: JsonKeys::default(),
            row: 0,
            done: false,
            summary,
        }
    }

    pub fn summary(&self) -> &ParseSummary {
        &self.summary
    }

    pub fn into_summary(self) -> ParseSummary {
        self.summary
    }

    /// Reads one record into `out`/`ends` (and its raw bytes into `raw`), in at most about
    /// `max_row` bytes of memory.
    fn read_record(&mut self) -> std::io::Result<Option<Record>> {
        self.raw.clear();
        let (mut outlen, mut endlen, mut raw_total, mut oversized) = (0, 0, 0usize, false);
        loop {
            if self.pos == self.len && !self.eof {
                self.pos = 0;
                self.len = read_some(&mut self.src, &mut self.buf)?;
                self.eof = self.len == 0;
            }
            let input = &self.buf[self.pos..self.len];
            let (res, nin, nout, nend) = if oversized {
                self.core.read_record(input, &mut self.scratch, &mut self.scratch_ends)
            } else {
                self.core.read_record(input, &mut self.out[outlen..], &mut self.ends[endlen..])
            };
            let keep = (self.max_row + 1).saturating_sub(self.raw.len()).min(nin);
            self.raw.extend_from_slice(&input[..keep]);
            self.pos += nin;
            raw_total += nin;
            if !oversized {
                outlen += nout;
                endlen += nend;
                oversized = raw_total > self.max_row;
            }
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull if !oversized => {
                    let grown = (self.out.len() * 2).min(self.max_row + 1);
                    if grown <= self.out.len() {
                        oversized = true;
                    } else {
                        self.out.resize(grown, 0);
                    }
                }
                ReadRecordResult::OutputEndsFull if !oversized => {
                    if self.ends.len() >= MAX_FIELDS {
                        oversized = true;
                    } else {
                        self.ends.resize(self.ends.len() * 2, 0);
                    }
                }
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record if oversized => return Ok(Some(Record::Oversized(raw_total))),
                ReadRecordResult::Record => return Ok(Some(Record::Fields(endlen))),
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Where field `i` of the record is in `out`.
    fn field_range(&self, i: usize) -> std::ops::Range<usize> {
        (if i == 0 { 0 } else { self.ends[i - 1] })..self.ends[i]
    }

    fn field(&self, i: usize) -> &[u8] {
        &self.out[self.field_range(i)]
    }

    /// The bytes of a record's `n` fields, back to back.
    fn fields(&self, n: usize) -> &[u8] {
        &self.out[..if n == 0 { 0 } else { self.ends[n - 1] }]
    }

    /// Why a record of `n` fields cannot become an object (non-empty fields past the header, a
    /// NUL byte), if it cannot.
    fn unusable(&self, n: usize) -> Option<String> {
        let width = self.header.as_ref().map_or(0, Vec::len);
        if n > width && (width..n).any(|i| !self.field(i).is_empty()) {
            return Some(format!("row has {n} fields but the header has {width}"));
        }
        self.fields(n).contains(&0).then(|| NUL_MESSAGE.to_owned())
    }

    /// A field as text: UTF-8, or windows-1252 for raw input that is not valid UTF-8.
    fn text(&self, bytes: &[u8], fell_back: &mut bool) -> String {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) if self.fallback => {
                *fell_back = true;
                encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned()
            }
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    fn raw_error(&self, message: String, keep: usize) -> RowError {
        let trimmed = trim_line_ends(&self.raw);
        RowError { message, raw_text: raw_text(trimmed, keep) }
    }

    fn read_header(&mut self) -> Result<bool, StagingError> {
        match self.read_record()? {
            None => {
                self.summary.empty_input = true;
                Ok(false)
            }
            Some(Record::Oversized(_)) => Err(StagingError::HeaderTooLarge(self.max_row)),
            Some(Record::Fields(n)) => {
                let mut ignored = false;
                let names = (0..n).map(|i| self.text(self.field(i), &mut ignored).replace('\0', "\u{FFFD}")).collect();
                let header = unique_header(names);
                self.keys = JsonKeys::new(&header);
                self.summary.header = header.clone();
                self.header = Some(header);
                Ok(true)
            }
        }
    }

    /// The next record and its row number, or `None` at the end.
    fn advance(&mut self) -> Result<Option<(u32, Record)>, StagingError> {
        if self.header.is_none() && !self.read_header()? {
            return Ok(None);
        }
        let Some(record) = self.read_record()? else {
            return Ok(None);
        };
        if self.row >= i32::MAX as u32 {
            return Err(StagingError::TooManyRows);
        }
        self.row += 1;
        Ok(Some((self.row, record)))
    }

    fn outcome(&mut self, record: Record) -> Result<Map<String, Value>, RowError> {
        match record {
            Record::Fields(n) => self.build(n),
            Record::Oversized(len) => Err(self.raw_error(
                format!(
                    "row is {len} bytes, over the {}-byte limit; raw text cut to its first {RAW_TEXT_KEEP} bytes",
                    self.max_row
                ),
                RAW_TEXT_KEEP,
            )),
        }
    }

    /// One step of either iteration: stops after the end or a failure, counts rows.
    fn step<T>(
        &mut self,
        f: impl FnOnce(&mut Self, u32, Record) -> Result<(T, bool), StagingError>,
    ) -> Option<Result<T, StagingError>> {
        if self.done {
            return None;
        }
        let stepped = match self.advance() {
            Ok(Some((row, record))) => f(self, row, record),
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(e) => Err(e),
        };
        match stepped {
            Ok((item, ok)) => {
                if ok {
                    self.summary.rows_ok += 1;
                } else {
                    self.summary.rows_error += 1;
                }
                Some(Ok(item))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// Encodes the next row for COPY; the same rows as the iterator gives, without building a
    /// `Map` for rows that are plain (valid UTF-8, no NUL, no stray fields).
    pub(crate) fn encode_next(&mut self, enc: &mut RowEncoder) -> Option<Result<(), StagingError>> {
        self.step(|this, row, record| {
            if let Record::Fields(n) = record
                && let Some(text) = this.plain(n)
            {
                let field = |i: usize| &text[this.field_range(i)];
                enc.encode_json_with(row, |buf| this.keys.write(buf, n, field))?;
                return Ok(((), true));
            }
            let outcome = this.outcome(record);
            let ok = outcome.is_ok();
            enc.encode(&ImportRow::from(StagedRow { row_number: row, outcome }))?;
            Ok(((), ok))
        })
    }

    /// The text of a record's fields when the fast path may write it: all UTF-8, no NUL, no
    /// non-empty field past the header.
    fn plain(&self, n: usize) -> Option<&str> {
        if self.unusable(n).is_some() {
            return None;
        }
        std::str::from_utf8(self.fields(n)).ok()
    }

    fn build(&mut self, n: usize) -> Result<Map<String, Value>, RowError> {
        if let Some(message) = self.unusable(n) {
            return Err(self.raw_error(message, usize::MAX));
        }
        let header = self.header.as_deref().unwrap_or_default();
        let mut fell_back = false;
        let mut map = Map::new();
        for (i, name) in header.iter().enumerate().take(n) {
            map.insert(name.clone(), Value::String(self.text(self.field(i), &mut fell_back)));
        }
        if fell_back {
            self.summary.fallback_rows += 1;
        }
        Ok(map)
    }
}

impl Iterator for CsvRows<'_> {
    type Item = Result<StagedRow, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(|this, row, record| {
            let outcome = this.outcome(record);
            let ok = outcome.is_ok();
            Ok((StagedRow { row_number: row, outcome }, ok))
        })
    }
}

fn trim_line_ends(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !matches!(b, b'\r' | b'\n')).map_or(start, |i| i + 1);
    &raw[start..end.max(start)]
}

/// Makes header names usable as object keys: empty (or blank) names become `column_N` (N is the
/// 1-based position), repeated names get `_2`, `_3`, … until unique.
pub fn unique_header(names: Vec<String>) -> Vec<String> {
    let mut used = HashSet::new();
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let base = if name.trim().is_empty() { format!("column_{}", i + 1) } else { name };
            let mut candidate = base.clone();
            let mut k = 2;
            while !used.insert(candidate.clone()) {
                candidate = format!("{base}_{k}");
                k += 1;
            }
            candidate
        })
        .collect()
}
