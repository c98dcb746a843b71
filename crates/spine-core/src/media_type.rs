//! Media type detection from content. The first bytes decide; the name's extension only picks
//! between types the bytes cannot tell apart (a ZIP that is a DOCX, text that is CSV).

use crate::file_name::extension;

/// How many leading bytes [`detect`] wants.
pub const HEAD_LEN: usize = 8192;

/// The media type of content beginning with `head` (up to [`HEAD_LEN`] bytes; `complete` when
/// `head` is the whole content), named `name`.
pub fn detect(head: &[u8], complete: bool, name: &str) -> &'static str {
    let ext = extension(name);
    let ext = ext.as_deref().unwrap_or("");
    if head.is_empty() {
        return if complete { "application/x-empty" } else { "application/octet-stream" };
    }
    if let Some(t) = magic(head, ext) {
        return t;
    }
    // A few stray control bytes (a NUL in a CSV cell) do not make a text file binary when its
    // name says it is text; without such a name, more than 1% of them does.
    let tolerance = if matches!(ext, "csv" | "tsv" | "tab" | "txt" | "json" | "ndjson" | "jsonl") { 30 } else { 1 };
    match text_kind(head, complete, tolerance) {
        Some(body) => text_type(body.trim_start_matches('\u{feff}').trim_start(), ext),
        None => "application/octet-stream",
    }
}

fn magic(h: &[u8], ext: &str) -> Option<&'static str> {
    let starts = |m: &[u8]| h.starts_with(m);
    Some(if starts(b"%PDF-") {
        "application/pdf"
    } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        zip_kind(h, ext)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "image/gif"
    } else if h.len() >= 12 && &h[..4] == b"RIFF" && &h[8..12] == b"WEBP" {
        "image/webp"
    } else if h.len() >= 12 && &h[..4] == b"RIFF" && &h[8..12] == b"WAVE" {
        "audio/wav"
    } else if h.len() >= 12 && &h[4..8] == b"ftyp" {
        if &h[8..12] == b"heic" || &h[8..12] == b"mif1" { "image/heic" } else { "video/mp4" }
    } else if starts(b"ID3") || starts(b"\xff\xfb") {
        "audio/mpeg"
    } else if starts(b"OggS") {
        "audio/ogg"
    } else if starts(b"\x1f\x8b") {
        "application/gzip"
    } else if starts(b"BZh") {
        "application/x-bzip2"
    } else if starts(b"\xfd7zXZ\x00") {
        "application/x-xz"
    } else if starts(b"7z\xbc\xaf\x27\x1c") {
        "application/x-7z-compressed"
    } else if starts(b"Rar!\x1a\x07") {
        "application/vnd.rar"
    } else if h.len() >= 262 && &h[257..262] == b"ustar" {
        "application/x-tar"
    } else if starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        match ext {
            "doc" => "application/msword",
            "xls" => "application/vnd.ms-excel",
            "msg" => "application/vnd.ms-outlook",
            _ => "application/x-ole-storage",
        }
    } else if starts(b"SQLite format 3\0") {
        "application/vnd.sqlite3"
    } else {
        return None;
    })
}

fn zip_kind(h: &[u8], ext: &str) -> &'static str {
    let has = |needle: &[u8]| h.windows(needle.len()).any(|w| w == needle);
    if has(b"mimetypeapplication/vnd.oasis.opendocument.text") {
        "application/vnd.oasis.opendocument.text"
    } else if has(b"mimetypeapplication/epub+zip") {
        "application/epub+zip"
    } else if has(b"word/") || ext == "docx" {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    } else if has(b"xl/") || ext == "xlsx" {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    } else if has(b"ppt/") || ext == "pptx" {
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    } else {
        "application/zip"
    }
}

/// The head as text when it looks like text: UTF-16 with a BOM, or UTF-8 (a character cut at the
/// end of an incomplete head is fine) or Latin-1, with at most `tolerance_percent` control bytes
/// other than whitespace.
fn text_kind(h: &[u8], complete: bool, tolerance_percent: usize) -> Option<String> {
    if h.starts_with(b"\xff\xfe") || h.starts_with(b"\xfe\xff") {
        let le = h.starts_with(b"\xff\xfe");
        let units: Vec<u16> = h[2..]
            .chunks_exact(2)
            .map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
            .collect();
        return Some(String::from_utf16_lossy(&units));
    }
    let control = |b: &u8| *b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c);
    if h.iter().filter(|b| control(b)).count() * 100 > h.len() * tolerance_percent {
        return None;
    }
    match std::str::from_utf8(h) {
        Ok(s) => Some(s.to_owned()),
        Err(e) if !complete && e.error_len().is_none() => Some(String::from_utf8_lossy(&h[..e.valid_up_to()]).into()),
        Err(_) => Some(h.iter().map(|&b| b as char).collect()),
    }
}

fn text_type(body: &str, ext: &str) -> &'static str {
    let upper_start = |p: &str| body.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    if upper_start("BEGIN:VCALENDAR") {
        return "text/calendar";
    }
    if upper_start("BEGIN:VCARD") {
        return "text/vcard";
    }
    if upper_start("<?xml") || upper_start("<rss") || upper_start("<feed") {
        return if body.contains("<rss") {
            "application/rss+xml"
        } else if body.contains("<feed") && body.contains("http://www.w3.org/2005/Atom") {
            "application/atom+xml"
        } else {
            "application/xml"
        };
    }
    if upper_start("<!DOCTYPE html") || upper_start("<html") {
        return "text/html";
    }
    if body.starts_with('{') || body.starts_with('[') {
        return match ext {
            "ndjson" | "jsonl" => "application/x-ndjson",
            _ => "application/json",
        };
    }
    if is_mail_header(body) {
        return "message/rfc822";
    }
    match ext {
        "csv" => "text/csv",
        "tsv" | "tab" => "text/tab-separated-values",
        "md" | "markdown" => "text/markdown",
        _ => "text/plain",
    }
}

fn is_mail_header(body: &str) -> bool {
    const HEADERS: [&str; 8] =
        ["Return-Path:", "Received:", "From:", "Delivered-To:", "MIME-Version:", "Message-ID:", "Date:", "X-"];
    let mut lines = body.lines().take(5).filter(|l| !l.starts_with([' ', '\t']));
    let Some(first) = lines.next() else { return false };
    HEADERS.iter().any(|h| first.get(..h.len()).is_some_and(|p| p.eq_ignore_ascii_case(h)))
        && body.lines().take(40).any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("from:") || l.starts_with("subject:") || l.starts_with("to:")
        })
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn by_content() {
        assert_eq!(detect(b"%PDF-1.7\n", false, "x.txt"), "application/pdf");
        assert_eq!(detect(b"PK\x03\x04....word/document.xml", false, "a.bin"), super::zip_kind(b"word/", ""));
        assert_eq!(detect(b"PK\x03\x04 nothing", true, "a.zip"), "application/zip");
        assert_eq!(detect(b"\x1f\x8b\x08", false, "a"), "application/gzip");
        assert_eq!(detect(b"BEGIN:VCALENDAR\r\n", true, "a.txt"), "text/calendar");
        assert_eq!(detect(b"  [{\"a\":1}]", true, "data"), "application/json");
        assert_eq!(detect(b"{\"a\":1}\n{\"a\":2}\n", true, "d.ndjson"), "application/x-ndjson");
        assert_eq!(detect(b"a,b\n1,2\n", true, "d.csv"), "text/csv");
        assert_eq!(detect(b"\xef\xbb\xbfa,b\n1,2\n", true, "d.CSV"), "text/csv");
        assert_eq!(detect(b"\xff\xfea\0,\0b\0", true, "d.csv"), "text/csv");
        assert_eq!(detect(b"hello", true, "d.csv.exe"), "text/plain");
        assert_eq!(detect(b"", true, "e.csv"), "application/x-empty");
        assert_eq!(detect(b"\0\0\0\x01\x02\x03\x04", true, "x.csv"), "application/octet-stream");
        assert_eq!(detect(b"a,b\n1,\0\n2,3\n", true, "nul.csv"), "text/csv");
        assert_eq!(detect(b"a,b\n1,\0\n2,3\n", true, "nul"), "application/octet-stream");
        assert_eq!(
            detect(b"Return-Path: <a@b>\r\nFrom: a@b\r\nSubject: hi\r\n\r\nbody", true, "m.eml"),
            "message/rfc822"
        );
        assert_eq!(detect(b"<?xml version=\"1.0\"?><rss version=\"2.0\">", true, "f"), "application/rss+xml");
        assert_eq!(detect(b"caf\xe9,1\n", true, "l.csv"), "text/csv");
        // Multi-byte characters where a header name would end (found by the BLNS corpus).
        assert_eq!(detect("aå\nb".as_bytes(), true, "x"), "text/plain");
        // A head cut inside a UTF-8 character is still text.
        assert_eq!(detect("a,é".as_bytes().split_at(3).0, false, "c.csv"), "text/csv");
    }
}
