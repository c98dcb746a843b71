//! The shared corpus, read in place: every file under csv/, json/ and bad-input/ parses without
//! panic or hang (each under a timeout), and where the corpus has expected values they are
//! asserted. Plus generated inputs: a 100 MB single line (streamed, never stored).

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Map, Value};
use spine_pipeline::staging::{Format, ParseOptions, ParseSummary, StagedRow, parse};
use spine_testkit::{corpus_dir, files_under};

const PER_FILE: Duration = Duration::from_secs(30);

type Parsed = Result<(Vec<StagedRow>, ParseSummary), String>;

/// Parses a file on its own thread under a timeout; a panic or a hang fails the test.
fn parse_file(path: &Path) -> Parsed {
    let (tx, rx) = mpsc::channel();
    let p = path.to_owned();
    let handle = std::thread::spawn(move || {
        let run = || -> Parsed {
            let file = std::fs::File::open(&p).map_err(|e| e.to_string())?;
            let mut it = parse(std::io::BufReader::new(file), &ParseOptions::default()).map_err(|e| e.to_string())?;
            let rows = it.by_ref().collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
            Ok((rows, it.into_summary()))
        };
        let _ = tx.send(run());
    });
    match rx.recv_timeout(PER_FILE) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{} did not finish within {PER_FILE:?}", path.display()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let _ = handle.join();
            panic!("{}: the parser panicked", path.display())
        }
    }
}

fn objects(rows: &[StagedRow], path: &Path) -> Vec<Map<String, Value>> {
    rows.iter()
        .map(|r| r.outcome.clone().unwrap_or_else(|e| panic!("{} row {}: {e:?}", path.display(), r.row_number)))
        .collect()
}

#[test]
fn every_corpus_file_parses_or_errs_cleanly() {
    let root = corpus_dir();
    let mut files = Vec::new();
    for sub in ["csv", "json", "bad-input"] {
        files_under(&root.join(sub), &mut files);
    }
    assert!(files.len() > 400, "corpus looks incomplete: {} files", files.len());
    let (mut rows, mut errors, mut fatal) = (0u64, 0u64, 0u64);
    for path in &files {
        match parse_file(path) {
            Ok((parsed, summary)) => {
                assert_eq!(summary.rows_ok + summary.rows_error, parsed.len() as u64, "{}", path.display());
                for (i, row) in parsed.iter().enumerate() {
                    assert_eq!(row.row_number as usize, i + 1, "{}", path.display());
                    if let Err(e) = &row.outcome {
                        assert!(!e.message.is_empty() && !e.raw_text.contains('\0'), "{}", path.display());
                    }
                }
                rows += summary.rows_ok;
                errors += summary.rows_error;
            }
            Err(message) => {
                assert!(!message.is_empty());
                fatal += 1;
            }
        }
    }
    eprintln!("{} files: {rows} rows ok, {errors} error rows, {fatal} refused", files.len());
}

#[test]
fn csv_spectrum_matches_expected_json() {
    let dir = corpus_dir().join("csv/messy/csv-spectrum");
    let mut files = Vec::new();
    files_under(&dir.join("csvs"), &mut files);
    assert_eq!(files.len(), 11);
    for csv in files {
        let bytes = std::fs::read(&csv).unwrap();
        let name = csv.file_stem().unwrap().to_str().unwrap().to_owned();
        let expected = std::fs::read_to_string(dir.join("json").join(format!("{name}.json"))).unwrap();
        // The *_crlf files lost their CRs upstream of the corpus; the expected JSON kept them.
        let expected = if bytes.contains(&b'\r') { expected } else { expected.replace("\\r\\n", "\\n") };
        let expected: Vec<Map<String, Value>> = serde_json::from_str(&expected).unwrap();
        let (rows, summary) = parse_file(&csv).unwrap();
        assert_eq!(summary.format, Format::Csv, "{name}");
        assert_eq!(objects(&rows, &csv), expected, "{name}");
    }
}

#[test]
fn thunderbird_contacts_match_expected_cards() {
    let dir = corpus_dir().join("csv/contacts/thunderbird");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected_csv_import.json")).unwrap()).unwrap();
    let cards = expected["csv_import"].as_array().unwrap();
    let fields = [
        ("DisplayName", "Display Name"),
        ("FirstName", "First Name"),
        ("LastName", "Last Name"),
        ("PrimaryEmail", "Primary Email"),
    ];
    for (file, delimiter) in [("basic_csv_addressbook.csv", ','), ("csv_semicolon.csv", ';')] {
        let path = dir.join(file);
        let (rows, summary) = parse_file(&path).unwrap();
        assert_eq!(summary.delimiter, Some(delimiter), "{file}");
        let got = objects(&rows, &path);
        assert_eq!(got.len(), cards.len(), "{file}");
        for (row, card) in got.iter().zip(cards) {
            for (card_key, column) in fields {
                assert_eq!(row[column], card[card_key], "{file} {column}");
            }
        }
    }
}

#[test]
fn csvkit_encodings_and_oddities() {
    let dir = corpus_dir().join("csv/messy/csvkit");
    let get = |name: &str| {
        let path = dir.join(name);
        let (rows, summary) = parse_file(&path).unwrap();
        (rows, summary)
    };
    let abc = |rows: &[StagedRow], path: &str, c2: &str| {
        let got = objects(rows, Path::new(path));
        let want: Vec<Map<String, Value>> =
            serde_json::from_value(serde_json::json!([{"a":"1","b":"2","c":"3"},{"a":"4","b":"5","c":c2}])).unwrap();
        assert_eq!(got, want, "{path}");
    };
    for (file, encoding) in [("test_utf16_big.csv", "UTF-16BE"), ("test_utf16_little.csv", "UTF-16LE")] {
        let (rows, s) = get(file);
        assert_eq!(s.encoding, encoding);
        abc(&rows, file, "ʤ");
    }
    let (rows, s) = get("test_latin1.csv");
    assert_eq!(s.encoding, "windows-1252");
    abc(&rows, "test_latin1.csv", "©");
    let (rows, s) = get("test_utf8_bom.csv");
    assert_eq!((s.encoding.as_str(), s.header[0].as_str()), ("UTF-8 (BOM)", "foo"));
    assert_eq!(rows[1].outcome.as_ref().unwrap()["baz"], "ʤ");
    let (rows, s) = get("empty.csv");
    assert!(rows.is_empty() && s.empty_input);
    let (rows, _) = get("null_byte.csv");
    assert!(rows[0].outcome.as_ref().unwrap_err().message.contains("NUL"));
    let (rows, s) = get("bad.csv");
    assert_eq!((s.rows_ok, s.rows_error), (2, 1), "one long row, one short row");
    assert_eq!(rows[0].outcome.as_ref().unwrap_err().raw_text, "1,27,,\"I'm too long!\"");
    let (rows, s) = get("dummy.tsv");
    assert_eq!(s.delimiter, Some('\t'));
    assert_eq!(rows[0].outcome.as_ref().unwrap()["c"], "3");
    let (rows, _) = get("mac_newlines.csv");
    assert_eq!(rows[1].outcome.as_ref().unwrap()["a"], "Once upon\ra time");
    let (_, s) = get("sniff_limit.csv");
    assert_eq!(s.delimiter, Some(';'));
}

#[test]
fn json_test_suite_objects_are_rows() {
    let dir = corpus_dir().join("json/JSONTestSuite/test_parsing");
    let mut files = Vec::new();
    files_under(&dir, &mut files);
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if !name.starts_with("y_object") || first != Some(b'{') {
            continue;
        }
        let (rows, summary) = parse_file(&path).unwrap();
        assert!(matches!(summary.format, Format::Json | Format::Ndjson), "{name}");
        assert_eq!(rows.len(), 1, "{name}");
        let expected: Value = serde_json::from_slice(&bytes).unwrap();
        match &rows[0].outcome {
            Ok(map) => assert_eq!(&Value::Object(map.clone()), &expected, "{name}"),
            // `{"foo\u0000bar": 42}`: valid JSON that PostgreSQL cannot store.
            Err(e) => assert!(name.contains("null") && e.message.contains("NUL"), "{name}: {e:?}"),
        }
    }
}

/// Yields `prefix`, then `len` bytes of `fill`, then `suffix`, without holding them.
struct Generated {
    prefix: &'static [u8],
    fill: u8,
    len: usize,
    suffix: &'static [u8],
    at: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (p, s) = (self.prefix.len(), self.suffix.len());
        let total = p + self.len + s;
        let mut n = 0;
        while n < buf.len() && self.at < total {
            buf[n] = match self.at {
                i if i < p => self.prefix[i],
                i if i < p + self.len => self.fill,
                i => self.suffix[i - p - self.len],
            };
            n += 1;
            self.at += 1;
        }
        Ok(n)
    }
}

#[test]
fn a_100_mb_single_line_is_an_error_row_not_a_crash() {
    const LINE: usize = 100 * 1024 * 1024;
    for (prefix, suffix, format) in [
        (&b"name,other\n"[..], &b"\nok,1\n"[..], Format::Csv),
        (&b"{\"a\":1}\n{\"name\":\""[..], &b"\"}\n{\"a\":2}\n"[..], Format::Ndjson),
    ] {
        let input = Generated { prefix, fill: b'x', len: LINE, suffix, at: 0 };
        let mut it = parse(input, &ParseOptions::default()).unwrap();
        let rows = it.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
        let summary = it.into_summary();
        assert_eq!(summary.format, format);
        assert_eq!((summary.rows_ok, summary.rows_error), (rows.len() as u64 - 1, 1), "{format:?}");
        let bad = rows.iter().find(|r| r.outcome.is_err()).unwrap();
        let e = bad.outcome.as_ref().unwrap_err();
        assert!(e.message.contains("limit") && e.raw_text.len() <= 64 * 1024, "{format:?}: {}", e.message);
        assert!(rows.last().unwrap().outcome.is_ok(), "parsing goes on after the long line");
    }
}
