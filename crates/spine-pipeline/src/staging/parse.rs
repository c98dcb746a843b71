//! The entry point: detect encoding, format and delimiter, then hand the decoded stream to the
//! CSV or JSON row reader.

use std::io::{Cursor, Read};

use spine_store::repos::staging::{ImportRow, RowEncoder};

use super::csv_rows::CsvRows;
use super::decode::{DecodeReader, read_up_to};
use super::detect::{SNIFF_BYTES, TextEncoding, detect_encoding, detect_format, sniff_delimiter};
use super::json_rows::JsonRows;
use super::{Format, ParseOptions, ParseSummary, StagedRow, StagingError};

pub(crate) type Input<'a> = Box<dyn Read + Send + 'a>;

/// The rows of one input, in order. Yields `Err` only for failures that end the parse (I/O);
/// bad rows are `Ok` rows with an error outcome. [`RowIter::summary`] is complete once the
/// iterator has returned `None`.
pub enum RowIter<'a> {
    Csv(Box<CsvRows<'a>>),
    Json(Box<JsonRows<'a>>),
}

impl RowIter<'_> {
    pub fn summary(&self) -> &ParseSummary {
        match self {
            RowIter::Csv(r) => r.summary(),
            RowIter::Json(r) => r.summary(),
        }
    }

    pub fn into_summary(self) -> ParseSummary {
        match self {
            RowIter::Csv(r) => (*r).into_summary(),
            RowIter::Json(r) => (*r).into_summary(),
        }
    }

    /// Encodes the next row for COPY (`None` at the end): the rows the iterator gives, written
    /// without an intermediate `Map` where the format allows (CSV).
    pub fn encode_next(&mut self, enc: &mut RowEncoder) -> Option<Result<(), StagingError>> {
        match self {
            RowIter::Csv(r) => r.encode_next(enc),
            RowIter::Json(r) => r.next().map(|row| Ok(enc.encode(&ImportRow::from(row?))?)),
        }
    }
}

impl Iterator for RowIter<'_> {
    type Item = Result<StagedRow, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RowIter::Csv(r) => r.next(),
            RowIter::Json(r) => r.next(),
        }
    }
}

/// Starts parsing `input`: reads up to 64 KiB to detect encoding, format and delimiter (each
/// overridable in `opts`), then streams the rest.
pub fn parse<'a, R: Read + Send + 'a>(mut input: R, opts: &ParseOptions) -> Result<RowIter<'a>, StagingError> {
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = read_up_to(&mut input, &mut head)?;
    head.truncate(n);
    let encoding = detect_encoding(&head, n < SNIFF_BYTES);
    let bom = encoding.bom_len(&head);
    head.drain(..bom);
    let raw: Input<'a> = Box::new(Cursor::new(head).chain(input));
    let mut decoded: Input<'a> = match encoding {
        TextEncoding::Utf8 | TextEncoding::Utf8Bom => raw,
        TextEncoding::Utf16Le => Box::new(DecodeReader::new(raw, encoding_rs::UTF_16LE)),
        TextEncoding::Utf16Be => Box::new(DecodeReader::new(raw, encoding_rs::UTF_16BE)),
        TextEncoding::Windows1252 => Box::new(DecodeReader::new(raw, encoding_rs::WINDOWS_1252)),
    };
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = read_up_to(&mut decoded, &mut head)?;
    head.truncate(n);
    let format = opts.format.unwrap_or_else(|| detect_format(&head));
    let mut summary = ParseSummary::new(format, encoding.label());
    summary.empty_input = head.iter().all(u8::is_ascii_whitespace);
    // Raw UTF-8 input may hold single rows in another 8-bit encoding; transcoded input cannot.
    let fallback = matches!(encoding, TextEncoding::Utf8 | TextEncoding::Utf8Bom);
    let delimiter = opts.delimiter.unwrap_or_else(|| sniff_delimiter(&head));
    let stream: Input<'a> = Box::new(Cursor::new(head).chain(decoded));
    Ok(match format {
        Format::Csv => {
            summary.delimiter = Some(char::from(delimiter));
            RowIter::Csv(Box::new(CsvRows::new(stream, delimiter, opts.max_row_bytes, fallback, summary)))
        }
        Format::Json | Format::Ndjson => {
            RowIter::Json(Box::new(JsonRows::new(stream, format, opts.max_row_bytes, fallback, summary)))
        }
    })
}
