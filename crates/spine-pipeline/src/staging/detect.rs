//! Detection from the first bytes: encoding (BOM, BOM-less UTF-16 from NUL patterns, UTF-8 or
//! windows-1252), format (`[`/`{` → JSON, otherwise CSV) and the CSV delimiter.

use super::Format;

/// How many bytes detection looks at.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// The byte encoding of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8 without BOM; single rows that are not valid UTF-8 fall back to windows-1252.
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    /// Chosen when the first 64 KiB are not valid UTF-8 (Latin-1 text reads the same).
    Windows1252,
}

impl TextEncoding {
    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf8Bom => "UTF-8 (BOM)",
            TextEncoding::Utf16Le => "UTF-16LE",
            TextEncoding::Utf16Be => "UTF-16BE",
            TextEncoding::Windows1252 => "windows-1252",
        }
    }

    /// Length of the byte-order mark this encoding was detected by.
    pub fn bom_len(self, head: &[u8]) -> usize {
        match self {
            TextEncoding::Utf8Bom => 3,
            TextEncoding::Utf16Le if head.starts_with(&[0xFF, 0xFE]) => 2,
            TextEncoding::Utf16Be if head.starts_with(&[0xFE, 0xFF]) => 2,
            _ => 0,
        }
    }
}

/// Detects the encoding of `head` (the first bytes of the input; `complete` when that is all).
pub fn detect_encoding(head: &[u8], complete: bool) -> TextEncoding {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return TextEncoding::Utf8Bom;
    }
    if head.starts_with(&[0xFF, 0xFE]) {
        return TextEncoding::Utf16Le;
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return TextEncoding::Utf16Be;
    }
    if let Some(utf16) = sniff_utf16(head) {
        return utf16;
    }
    match std::str::from_utf8(head) {
        Ok(_) => TextEncoding::Utf8,
        // Cut in the middle of a sequence at the end of the sniff window: still UTF-8.
        Err(e) if e.error_len().is_none() && !complete => TextEncoding::Utf8,
        Err(_) => TextEncoding::Windows1252,
    }
}

/// BOM-less UTF-16: text in Latin scripts has a NUL in (nearly) every other byte. A file of NUL
/// bytes has them on both sides and is not UTF-16.
fn sniff_utf16(head: &[u8]) -> Option<TextEncoding> {
    let sample = &head[..head.len().min(4096) & !1];
    let pairs = sample.len() / 2;
    if pairs < 2 {
        return None;
    }
    let even = sample.iter().step_by(2).filter(|b| **b == 0).count();
    let odd = sample.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
    let (even, odd) = (even * 100 / pairs, odd * 100 / pairs);
    if odd >= 40 && even <= 5 {
        Some(TextEncoding::Utf16Le)
    } else if even >= 40 && odd <= 5 {
        Some(TextEncoding::Utf16Be)
    } else {
        None
    }
}

/// Detects the format of decoded (UTF-8) text: `[` → JSON; `{` → NDJSON when the first object
/// ends on its first line, otherwise JSON (one or more objects); anything else → CSV.
pub fn detect_format(head: &[u8]) -> Format {
    let start = head.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| (i, head[i])) {
        Some((_, b'[')) => Format::Json,
        Some((i, b'{')) => match first_value_end(&head[i..]) {
            Some(end) if !head[i..i + end].contains(&b'\n') => Format::Ndjson,
            _ => Format::Json,
        },
        _ => Format::Csv,
    }
}

/// End (exclusive) of the object or array at the start of `s`, if it ends within `s`.
fn first_value_end(s: &[u8]) -> Option<usize> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for (i, &b) in s.iter().enumerate() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Candidate delimiters, in order of preference on a tie.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Sniffs the delimiter from the first lines of decoded text, counting candidates outside
/// quotes. The winner appears in the header and the same number of times on the most of the
/// following lines; no candidate in the header → `,`.
pub fn sniff_delimiter(head: &[u8]) -> u8 {
    let lines = split_lines(head, 20);
    let Some(first) = lines.first() else { return b',' };
    let mut best = (b',', 0usize, 0usize);
    for d in DELIMITERS {
        let n = count_outside_quotes(first, d);
        if n == 0 {
            continue;
        }
        let agree = lines[1..].iter().filter(|l| count_outside_quotes(l, d) == n).count();
        if (agree, n) > (best.1, best.2) {
            best = (d, agree, n);
        }
    }
    best.0
}

/// Up to `max` logical lines (a newline inside quotes does not end a line); a final partial
/// line is left out unless it is the only one.
fn split_lines(s: &[u8], max: usize) -> Vec<&[u8]> {
    let (mut out, mut start, mut in_q) = (Vec::new(), 0, false);
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'"' => in_q = !in_q,
            b'\n' | b'\r' if !in_q => {
                if i > start {
                    out.push(&s[start..i]);
                    if out.len() == max {
                        return out;
                    }
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if out.is_empty() && start < s.len() {
        out.push(&s[start..]);
    }
    out
}

fn count_outside_quotes(line: &[u8], d: u8) -> usize {
    let mut in_q = false;
    line.iter()
        .filter(|&&b| {
            if b == b'"' {
                in_q = !in_q;
            }
            !in_q && b == d
        })
        .count()
}
