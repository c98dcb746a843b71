//! The loader's fast path (`RowIter::encode_next`, which writes CSV rows as JSON without a
//! `Map`) produces the same COPY data as encoding the iterator's rows one by one, for every
//! file of the shared corpus (csv/, json/, bad-input/, read in place) and for edge cases the
//! corpus may not hold: only the generated row ids differ.

use std::sync::mpsc;
use std::time::Duration;

use spine_pipeline::staging::{ParseOptions, ParseSummary, parse};
use spine_store::repos::staging::{ImportRow, RowEncoder, StagingTarget};
use spine_testkit::{corpus_dir, files_under};
use uuid::Uuid;

const PER_FILE: Duration = Duration::from_secs(30);

/// Binary COPY tuples, each as its fields, with the id (field 0) left out.
fn tuples(mut b: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = i16::from_be_bytes([b[0], b[1]]);
        b = &b[2..];
        let mut fields = Vec::new();
        for i in 0..n {
            let len = i32::from_be_bytes(b[..4].try_into().unwrap());
            b = &b[4..];
            let value = (len >= 0).then(|| b[..len as usize].to_vec());
            b = &b[len.max(0) as usize..];
            if i > 0 {
                fields.push(value);
            }
        }
        out.push(fields);
    }
    out
}

type Encoded = Result<(Vec<Vec<Option<Vec<u8>>>>, ParseSummary), String>;

fn encode(bytes: &[u8], fast: bool) -> Encoded {
    let mut rows = parse(std::io::Cursor::new(bytes.to_vec()), &ParseOptions::default()).map_err(|e| e.to_string())?;
    let mut enc = RowEncoder::new(StagingTarget {
        tenant_id: Uuid::nil(),
        import_batch_id: Uuid::nil(),
        source_file_id: Uuid::nil(),
    });
    if fast {
        while let Some(step) = rows.encode_next(&mut enc) {
            step.map_err(|e| e.to_string())?;
        }
    } else {
        for row in rows.by_ref() {
            let row = row.map_err(|e| e.to_string())?;
            let import = match row.outcome {
                Ok(payload) => ImportRow::Parsed { row_number: row.row_number, payload },
                Err(e) => ImportRow::Failed { row_number: row.row_number, raw_text: e.raw_text, error: e.message },
            };
            enc.encode(&import).map_err(|e| e.to_string())?;
        }
    }
    Ok((tuples(enc.take().as_bytes()), rows.into_summary()))
}

/// Both paths on their own threads under a timeout.
fn both(name: &str, bytes: Vec<u8>) -> (Encoded, Encoded) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send((encode(&bytes, false), encode(&bytes, true)));
    });
    rx.recv_timeout(PER_FILE).unwrap_or_else(|e| panic!("{name}: no result within {PER_FILE:?} ({e})"))
}

fn assert_same(name: &str, bytes: Vec<u8>) -> usize {
    match both(name, bytes) {
        (Ok((slow, slow_summary)), Ok((fast, fast_summary))) => {
            assert_eq!(fast.len(), slow.len(), "{name}: row count");
            for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
                assert_eq!(f, s, "{name}: row {} differs", i + 1);
            }
            assert_eq!(fast_summary, slow_summary, "{name}: summary");
            fast.len()
        }
        (Err(slow), Err(fast)) => {
            assert_eq!(fast, slow, "{name}: error");
            0
        }
        (slow, fast) => {
            panic!("{name}: the paths disagree: {:?} against {:?}", fast.map(|r| r.0.len()), slow.map(|r| r.0.len()))
        }
    }
}

#[test]
fn the_fast_path_writes_what_the_row_path_writes_for_every_corpus_file() {
    let corpus = corpus_dir();
    let mut files = Vec::new();
    for dir in ["csv", "json", "bad-input"] {
        files_under(&corpus.join(dir), &mut files);
    }
    files.sort();
    let (mut rows, mut checked) = (0, 0);
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        if bytes.len() > 64 * 1024 * 1024 {
            continue;
        }
        rows += assert_same(&path.display().to_string(), bytes);
        checked += 1;
    }
    assert!(checked > 100 && rows > 1000, "only {checked} files / {rows} rows compared");
}

#[test]
fn edge_cases_take_the_row_path_and_agree() {
    let cases: [(&str, &[u8]); 9] = [
        ("escapes", b"a,b\n\"q \"\"x\"\" \\\\ \t\",\"line\nbreak\"\r\n\x01\x1f,\x7f\n"),
        ("short and long rows", b"a,b,c\n1\n1,2,3,,\n1,2,3,4\n"),
        ("NUL", b"a,b\n1,x\x00y\n2,ok\n"),
        ("latin-1 row in UTF-8 file", "a,b\né,ü\n".as_bytes()),
        ("invalid UTF-8 row", b"a,b\n\xff\xfe,ok\nz,\xc3\n"),
        ("duplicate and empty header names", b"a,a,,b\n1,2,3,4\n"),
        ("header only", b"a,b\n"),
        ("semicolons", "name;e-mail;\"quoted;field\"\nAda;ada@x;\"1;2\"\n".as_bytes()),
        ("unicode keys", "ключ,🔑,\"k\"\"q\"\nзначение,v,w\n".as_bytes()),
    ];
    for (name, bytes) in cases {
        assert_same(name, bytes.to_vec());
    }
}
