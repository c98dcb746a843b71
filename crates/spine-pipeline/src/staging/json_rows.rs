//! JSON rows without holding the document: a small scanner splits the input into top-level
//! values (the elements of a top-level array, objects one after another, or NDJSON lines), each
//! at most the row size cap, and serde_json parses one element at a time (its recursion limit
//! turns absurd nesting into an error row). An element that is not an object, or not valid JSON,
//! is an error row with its raw text; the scanner then goes on with the next element.

use serde_json::{Map, Value};

use super::decode::read_some;
use super::parse::Input;
use super::{Format, NUL_MESSAGE, ParseSummary, RAW_TEXT_KEEP, RowError, StagedRow, StagingError, has_nul, raw_text};

const CHUNK: usize = 64 * 1024;
const MAX_WARNINGS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// Inside the top-level array, expecting an element or `]`.
    Elem,
    /// After an element, expecting `,` or `]`.
    Sep,
    /// After the top-level array.
    After,
    /// Top-level values one after another.
    Values,
    Lines,
    Done,
}

pub struct JsonRows<'a> {
    src: Input<'a>,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    format: Format,
    state: State,
    elem: Vec<u8>,
    max_row: usize,
    fallback: bool,
    row: u32,
    offset: u64,
    summary: ParseSummary,
}

impl<'a> JsonRows<'a> {
    pub(crate) fn new(src: Input<'a>, format: Format, max_row: usize, fallback: bool, summary: ParseSummary) -> Self {
        Self {
            src,
            buf: vec![0; CHUNK],
            pos: 0,
            len: 0,
            eof: false,
            format,
            state: State::Start,
            elem: Vec::new(),
            max_row: max_row.max(1),
            fallback,
            row: 0,
            offset: 0,
            summary,
        }
    }

    pub fn summary(&self) -> &ParseSummary {
        &self.summary
    }

    pub fn into_summary(self) -> ParseSummary {
        self.summary
    }

    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        if self.pos == self.len {
            if self.eof {
                return Ok(None);
            }
            self.pos = 0;
            self.len = read_some(&mut self.src, &mut self.buf)?;
            self.eof = self.len == 0;
            if self.eof {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.pos]))
    }

    fn bump(&mut self) {
        self.pos += 1;
        self.offset += 1;
    }

    fn skip_ws(&mut self) -> std::io::Result<Option<u8>> {
        while let Some(b) = self.peek()? {
            if !b.is_ascii_whitespace() {
                return Ok(Some(b));
            }
            self.bump();
        }
        Ok(None)
    }

    /// Takes the next byte into `elem` (up to the cap) and returns it.
    fn take(&mut self, total: &mut usize) -> std::io::Result<Option<u8>> {
        let b = self.peek()?;
        if let Some(b) = b {
            self.bump();
            *total += 1;
            if self.elem.len() <= self.max_row {
                self.elem.push(b);
            }
        }
        Ok(b)
    }

    /// Scans one value starting at the current (non-whitespace) byte into `elem`. Returns its
    /// length and whether it was complete. Consumes at least one byte unless at the end.
    fn scan_value(&mut self) -> std::io::Result<(usize, bool)> {
        self.elem.clear();
        let mut total = 0;
        let Some(first) = self.take(&mut total)? else { return Ok((0, false)) };
        let (mut depth, mut in_str, mut esc) = match first {
            b'{' | b'[' => (1usize, false, false),
            b'"' => (0, true, false),
            b',' | b']' | b'}' | b':' => return Ok((total, true)),
            _ => {
                while let Some(b) = self.peek()? {
                    if b.is_ascii_whitespace() || matches!(b, b',' | b']' | b'}' | b'{' | b'[') {
                        break;
                    }
                    self.take(&mut total)?;
                }
                return Ok((total, true));
            }
        };
        while let Some(b) = self.take(&mut total)? {
            if in_str {
                match (esc, b) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => {
                        in_str = false;
                        if depth == 0 {
                            return Ok((total, true));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok((total, true));
                    }
                }
                _ => {}
            }
        }
        Ok((total, false))
    }

    /// Reads one line (without its `\n`) into `elem`. Returns its length, or `None` at the end.
    fn scan_line(&mut self) -> std::io::Result<Option<usize>> {
        self.elem.clear();
        let mut total = 0;
        if self.peek()?.is_none() {
            return Ok(None);
        }
        while let Some(b) = self.peek()? {
            self.bump();
            if b == b'\n' {
                break;
            }
            total += 1;
            if self.elem.len() <= self.max_row {
                self.elem.push(b);
            }
        }
        if self.elem.last() == Some(&b'\r') {
            self.elem.pop();
            total -= 1;
        }
        Ok(Some(total))
    }

    fn warn(&mut self, message: String) {
        if self.summary.warnings.len() < MAX_WARNINGS {
            self.summary.warnings.push(message);
        }
    }

    /// Turns the scanned element into a row outcome.
    fn outcome(&mut self, total: usize, complete: bool) -> Result<Map<String, Value>, RowError> {
        if total > self.max_row {
            let message = format!(
                "element is {total} bytes, over the {}-byte limit; raw text cut to its first {RAW_TEXT_KEEP} bytes",
                self.max_row
            );
            return Err(RowError { message, raw_text: raw_text(&self.elem, RAW_TEXT_KEEP) });
        }
        let fail = |message: String, elem: &[u8]| Err(RowError { message, raw_text: raw_text(elem, usize::MAX) });
        if !complete {
            return fail("input ends inside this element".to_owned(), &self.elem);
        }
        let parsed = match std::str::from_utf8(&self.elem) {
            Ok(s) => serde_json::from_str::<Value>(s),
            Err(_) if self.fallback => {
                self.summary.fallback_rows += 1;
                serde_json::from_str(&encoding_rs::WINDOWS_1252.decode_without_bom_handling(&self.elem).0)
            }
            Err(_) => serde_json::from_slice(&self.elem),
        };
        match parsed {
            Ok(Value::Object(map)) if map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) => {
                fail(NUL_MESSAGE.to_owned(), &self.elem)
            }
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => fail(format!("element is {}, not an object", kind(&other)), &self.elem),
            Err(e) => fail(format!("invalid JSON: {e}"), &self.elem),
        }
    }

    fn next_row(&mut self) -> Result<Option<StagedRow>, StagingError> {
        loop {
            let (total, complete) = match self.state {
                State::Done => return Ok(None),
                State::Start => {
                    self.state = match (self.skip_ws()?, self.format) {
                        (None, _) => {
                            self.summary.empty_input = true;
                            State::Done
                        }
                        (Some(_), Format::Ndjson) => State::Lines,
                        (Some(b'['), _) => {
                            self.bump();
                            State::Elem
                        }
                        (Some(_), _) => State::Values,
                    };
                    continue;
                }
                State::Elem | State::Sep => {
                    let at = self.offset;
                    let mut scanned = None;
                    match (self.skip_ws()?, self.state) {
                        (None, _) => {
                            self.warn("input ends before the top-level array is closed".to_owned());
                            self.state = State::Done;
                        }
                        (Some(b']'), _) => {
                            self.bump();
                            self.state = State::After;
                        }
                        (Some(b','), State::Sep) => {
                            self.bump();
                            self.state = State::Elem;
                        }
                        (Some(b','), _) => {
                            self.bump();
                            self.warn(format!("empty array element at byte {at}"));
                        }
                        (Some(_), State::Sep) => {
                            self.warn(format!("missing comma between array elements at byte {at}"));
                            self.state = State::Elem;
                        }
                        (Some(_), _) => {
                            scanned = Some(self.scan_value()?);
                            self.state = State::Sep;
                        }
                    }
                    match scanned {
                        Some(s) => s,
                        None => continue,
                    }
                }
                State::After => {
                    if self.skip_ws()?.is_none() {
                        self.state = State::Done;
                    } else {
                        self.warn(format!("data after the top-level array at byte {}", self.offset));
                        self.state = State::Values;
                    }
                    continue;
                }
                State::Values => {
                    if self.skip_ws()?.is_none() {
                        self.state = State::Done;
                        continue;
                    }
                    self.scan_value()?
                }
                State::Lines => match self.scan_line()? {
                    None => {
                        self.state = State::Done;
                        continue;
                    }
                    Some(_) if self.elem.iter().all(u8::is_ascii_whitespace) => continue,
                    Some(total) => (total, true),
                },
            };
            if self.row >= i32::MAX as u32 {
                return Err(StagingError::TooManyRows);
            }
            self.row += 1;
            let outcome = self.outcome(total, complete);
            return Ok(Some(StagedRow { row_number: self.row, outcome }));
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Iterator for JsonRows<'_> {
    type Item = Result<StagedRow, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_row() {
            Ok(Some(row)) => {
                match row.outcome {
                    Ok(_) => self.summary.rows_ok += 1,
                    Err(_) => self.summary.rows_error += 1,
                }
                Some(Ok(row))
            }
            Ok(None) => None,
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}
