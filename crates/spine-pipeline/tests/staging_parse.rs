//! Parser unit tests: detection, quoting, encodings, delimiters, ragged rows, NUL, size cap,
//! JSON and NDJSON errors.

use serde_json::{Map, Value, json};
use spine_pipeline::staging::detect::{TextEncoding, detect_encoding, detect_format, sniff_delimiter};
use spine_pipeline::staging::{Format, ParseOptions, ParseSummary, StagedRow, parse};

fn run_with(bytes: &[u8], opts: ParseOptions) -> (Vec<StagedRow>, ParseSummary) {
    let mut it = parse(bytes, &opts).expect("parse starts");
    let rows: Vec<StagedRow> = it.by_ref().map(|r| r.expect("no fatal error")).collect();
    (rows, it.into_summary())
}

fn run(bytes: &[u8]) -> (Vec<StagedRow>, ParseSummary) {
    run_with(bytes, ParseOptions::default())
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn ok(row: &StagedRow) -> &Map<String, Value> {
    row.outcome.as_ref().unwrap_or_else(|e| panic!("row {} failed: {e:?}", row.row_number))
}

fn err(row: &StagedRow) -> (&str, &str) {
    let e = row.outcome.as_ref().expect_err("an error row");
    (e.message.as_str(), e.raw_text.as_str())
}

#[test]
fn detection() {
    assert_eq!(detect_encoding(b"\xEF\xBB\xBFa,b", true), TextEncoding::Utf8Bom);
    assert_eq!(detect_encoding(b"\xFF\xFEa\0", true), TextEncoding::Utf16Le);
    assert_eq!(detect_encoding(b"\xFE\xFF\0a", true), TextEncoding::Utf16Be);
    assert_eq!(detect_encoding(b"a\0,\0b\0\n\0", true), TextEncoding::Utf16Le);
    assert_eq!(detect_encoding(b"\0a\0,\0b\0\n", true), TextEncoding::Utf16Be);
    assert_eq!(detect_encoding(b"caf\xC3\xA9", true), TextEncoding::Utf8);
    assert_eq!(detect_encoding(b"caf\xE9", true), TextEncoding::Windows1252);
    assert_eq!(detect_encoding(b"caf\xC3", false), TextEncoding::Utf8, "cut at the sniff window");
    assert_eq!(detect_encoding(&[0u8; 64], true), TextEncoding::Utf8, "NULs on both sides are not UTF-16");
    assert_eq!(detect_format(b"  [ {}"), Format::Json);
    assert_eq!(detect_format(b"{\"a\":1}\n{\"a\":2}\n"), Format::Ndjson);
    assert_eq!(detect_format(b"{\n  \"a\": 1\n}\n"), Format::Json);
    assert_eq!(detect_format(b"a,b\n1,2\n"), Format::Csv);
    assert_eq!(sniff_delimiter(b"a;b;c\n1;2;3\n"), b';');
    assert_eq!(sniff_delimiter(b"a\tb\tc\n1\t2,5\t3\n"), b'\t');
    assert_eq!(sniff_delimiter(b"a|b\n1|2\n"), b'|');
    assert_eq!(sniff_delimiter(b"name;note\n\"x, y, z\";1\n"), b';', "commas inside quotes do not count");
    assert_eq!(sniff_delimiter(b"single\n1\n"), b',');
}

#[test]
fn rfc4180_quoting() {
    let (rows, s) = run(b"a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",,3\r\n\n\n4,5,6");
    assert_eq!(s.header, ["a", "b", "c"]);
    assert_eq!(s.delimiter, Some(','));
    assert_eq!(rows.len(), 3);
    assert_eq!(ok(&rows[0]), &obj(json!({"a": "1", "b": "x, y", "c": "say \"hi\""})));
    assert_eq!(ok(&rows[1]), &obj(json!({"a": "multi\nline", "b": "", "c": "3"})));
    assert_eq!(ok(&rows[2]), &obj(json!({"a": "4", "b": "5", "c": "6"})));
    assert_eq!(rows.iter().map(|r| r.row_number).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!((s.rows_ok, s.rows_error), (3, 0));
}

#[test]
fn encodings() {
    let (rows, s) = run(b"\xEF\xBB\xBFname\nJos\xC3\xA9\n");
    assert_eq!((s.encoding.as_str(), s.header.as_slice()), ("UTF-8 (BOM)", &["name".to_owned()][..]));
    assert_eq!(ok(&rows[0])["name"], "José");
    let (rows, s) = run(b"name\nJos\xE9\n");
    assert_eq!((s.encoding.as_str(), ok(&rows[0])["name"].as_str()), ("windows-1252", Some("José")));
    let le: Vec<u8> = [0xFF, 0xFE].into_iter().chain("a;b\n1;ʤ\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
    let (rows, s) = run(&le);
    assert_eq!((s.encoding.as_str(), s.delimiter), ("UTF-16LE", Some(';')));
    assert_eq!(ok(&rows[0]), &obj(json!({"a": "1", "b": "ʤ"})));
    let be: Vec<u8> = "a,b\n1,é\n".encode_utf16().flat_map(u16::to_be_bytes).collect();
    let (rows, s) = run(&be);
    assert_eq!(s.encoding, "UTF-16BE");
    assert_eq!(ok(&rows[0]), &obj(json!({"a": "1", "b": "é"})));
    // Valid UTF-8 at the start, one Latin-1 row far later: that row falls back alone.
    let mut late = b"name\n".to_vec();
    for _ in 0..20_000 {
        late.extend_from_slice(b"caf\xC3\xA9\n");
    }
    late.extend_from_slice(b"caf\xE9\n");
    let (rows, s) = run(&late);
    assert_eq!((s.encoding.as_str(), s.fallback_rows), ("UTF-8", 1));
    assert_eq!(ok(&rows[0])["name"], "café");
    assert_eq!(ok(rows.last().unwrap())["name"], "café");
}

#[test]
fn ragged_rows_and_headers() {
    let (rows, s) = run(b"name,,name,x\n1,2,3,4\nshort\n1,2,3,4,,\n1,2,3,4,5\n");
    assert_eq!(s.header, ["name", "column_2", "name_2", "x"]);
    assert_eq!(ok(&rows[0]), &obj(json!({"name": "1", "column_2": "2", "name_2": "3", "x": "4"})));
    assert_eq!(ok(&rows[1]), &obj(json!({"name": "short"})), "missing fields are absent");
    assert_eq!(ok(&rows[2]).len(), 4, "empty trailing fields are dropped");
    let (message, raw) = err(&rows[3]);
    assert!(message.contains("5 fields") && message.contains("header has 4"), "{message}");
    assert_eq!(raw, "1,2,3,4,5");
    assert_eq!(rows[3].row_number, 4);
    assert_eq!((s.rows_ok, s.rows_error), (3, 1));
}

#[test]
fn nul_bytes_make_error_rows() {
    let (rows, s) = run(b"a,b\n1,x\0y\n2,3\n");
    let (message, raw) = err(&rows[0]);
    assert!(message.contains("NUL"));
    assert_eq!(raw, "1,x\u{FFFD}y");
    assert_eq!(ok(&rows[1]), &obj(json!({"a": "2", "b": "3"})));
    assert_eq!((s.rows_ok, s.rows_error), (1, 1));
    let (rows, _) = run(&[0u8; 10_000]);
    assert!(rows.is_empty(), "a file of NULs is a header only");
    let (rows, _) = run(b"[{\"a\":\"x\\u0000y\"},{\"a\":1}]");
    assert!(err(&rows[0]).0.contains("NUL"));
    assert!(rows[1].outcome.is_ok());
}

#[test]
fn empty_inputs() {
    for input in [&b""[..], b"\n\n", b"   ", b"\xEF\xBB\xBF"] {
        let (rows, s) = run(input);
        assert!(rows.is_empty());
        assert!(s.empty_input, "{input:?}");
        assert_eq!((s.rows_ok, s.rows_error), (0, 0));
    }
    let (rows, s) = run(b"a,b\n");
    assert!(rows.is_empty() && !s.empty_input && s.header == ["a", "b"]);
}

#[test]
fn oversized_rows_become_error_rows() {
    let opts = ParseOptions { max_row_bytes: 1000, ..ParseOptions::default() };
    let mut input = b"a,b\n1,2\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend_from_slice(b",y\n3,4\n");
    let (rows, s) = run_with(&input, opts.clone());
    assert_eq!(rows.len(), 3);
    let (message, raw) = err(&rows[1]);
    assert!(message.contains("over the 1000-byte limit"), "{message}");
    assert!(raw.starts_with("xxx") && raw.len() <= 5003);
    assert_eq!(ok(&rows[2]), &obj(json!({"a": "3", "b": "4"})));
    assert_eq!((s.rows_ok, s.rows_error), (2, 1));
    // An unterminated quote swallows the rest, bounded by the cap.
    let (rows, _) = run_with(b"a\n\"open\n1\n2\n", opts.clone());
    assert_eq!(ok(&rows[0])["a"], "open\n1\n2\n");
    let mut json = b"[{\"a\":\"".to_vec();
    json.extend(std::iter::repeat_n(b'x', 5000));
    json.extend_from_slice(b"\"},{\"a\":2}]");
    let (rows, _) = run_with(&json, opts);
    assert!(err(&rows[0]).0.contains("limit"));
    assert_eq!(ok(&rows[1]), &obj(json!({"a": 2})));
}

#[test]
fn json_array_errors_continue() {
    let (rows, s) = run(b"[{\"a\":1}, 2, {\"b\": [1,2]}, {\"broken\": }, \"s\", {\"c\":\"]\"}]");
    assert_eq!(s.format, Format::Json);
    assert_eq!(rows.len(), 6);
    assert_eq!(ok(&rows[0]), &obj(json!({"a": 1})));
    assert_eq!(err(&rows[1]), ("element is a number, not an object", "2"));
    assert_eq!(ok(&rows[2]), &obj(json!({"b": [1, 2]})));
    assert!(err(&rows[3]).0.starts_with("invalid JSON"));
    assert_eq!(err(&rows[3]).1, "{\"broken\": }");
    assert_eq!(err(&rows[4]).0, "element is a string, not an object");
    assert_eq!(ok(&rows[5]), &obj(json!({"c": "]"})));
    assert_eq!((s.rows_ok, s.rows_error), (3, 3));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // Unclosed array and truncated element.
    let (rows, s) = run(b"[{\"a\":1},{\"a\":");
    assert_eq!(ok(&rows[0]), &obj(json!({"a": 1})));
    assert_eq!(err(&rows[1]), ("input ends inside this element", "{\"a\":"));
    assert_eq!(s.warnings, ["input ends before the top-level array is closed"]);
    // Deep nesting is an error row, not a stack overflow.
    let mut deep = b"[".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.push(b']');
    let (rows, _) = run(&deep);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].outcome.is_err());
}

#[test]
fn ndjson_and_single_objects() {
    let (rows, s) = run(b"{\"a\":1}\n\n{\"a\":2\n[1]\n{\"a\":3}\r\n");
    assert_eq!(s.format, Format::Ndjson);
    assert_eq!(rows.len(), 4, "blank lines are skipped");
    assert_eq!(ok(&rows[0]), &obj(json!({"a": 1})));
    assert_eq!(err(&rows[1]).1, "{\"a\":2");
    assert_eq!(err(&rows[2]).0, "element is an array, not an object");
    assert_eq!(ok(&rows[3]), &obj(json!({"a": 3})));
    assert_eq!(rows[3].row_number, 4);
    let (rows, s) = run(b"{\n  \"name\": \"one\",\n  \"n\": [1, 2]\n}\n");
    assert_eq!((s.format, rows.len()), (Format::Json, 1));
    assert_eq!(ok(&rows[0]), &obj(json!({"name": "one", "n": [1, 2]})));
    let forced = ParseOptions { format: Some(Format::Csv), ..ParseOptions::default() };
    let (rows, s) = run_with(b"{\"a\":1}\n{\"a\":2}\n", forced);
    assert_eq!((s.format, rows.len()), (Format::Csv, 1));
}

#[test]
fn reader_errors_are_fatal() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk gone"));
            }
            self.0 -= 1;
            let line = b"a,b\n1,2\n";
            buf[..line.len()].copy_from_slice(line);
            Ok(line.len())
        }
    }
    let rows = parse(Failing(3), &ParseOptions::default());
    assert!(rows.is_err(), "the sniff read fails");
    let mut rows = parse(Failing(20_000), &ParseOptions::default()).expect("sniff succeeds");
    let last = rows.by_ref().last().expect("rows then an error");
    assert!(last.is_err(), "a failing read ends the parse with an error");
    assert!(rows.next().is_none());
}
