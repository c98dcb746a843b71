//! Bad input through the inbox: the shared corpus (read in place, copied into the inbox at test
//! time), hostile names, empty and NUL-filled files, links, pipes, and files over the limit.
//! Each ends registered (in `processed/`) or refused (in `failed/` with a reason); never a panic,
//! a hang, a partial row or an orphan blob.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use spine_connectors::inbox::{DEFAULT_IGNORE, IgnoreRules};

use crate::helpers::{Env, files_under, sha256_hex, wait_count, wait_for};

const CORPUS: &str = "../../../shared/corpus";
/// The corpus folders issue 4 sends through the inbox (and, in spine-api's tests, through upload).
const CORPUS_DIRS: [&str; 3] = ["csv", "json", "bad-input"];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Processed,
    /// In failed/, with a reason containing this.
    Failed(&'static str),
    Ignored,
}

/// Copies the corpus into `root/corpus/…`; returns the relative paths written.
fn copy_corpus(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in CORPUS_DIRS {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS).join(dir);
        assert!(corpus.is_dir(), "the shared corpus is expected at {}", corpus.display());
        for rel in files_under(&corpus) {
            let dst = Path::new("corpus").join(dir).join(&rel);
            fs::create_dir_all(root.join(dst.parent().unwrap())).unwrap();
            fs::copy(corpus.join(&rel), root.join(&dst)).unwrap();
            out.push(dst);
        }
    }
    assert!(out.len() >= 400, "corpus has {} files", out.len());
    out
}

/// One file per line of the Big List of Naughty Strings that is a possible file name.
fn naughty_names(root: &Path) -> Vec<PathBuf> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS).join("bad-input/blns/blns.txt");
    let text = fs::read(corpus).unwrap();
    let dir = Path::new("blns");
    fs::create_dir_all(root.join(dir)).unwrap();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.split(|&b| b == b'\n') {
        let ok = !line.is_empty()
            && !line.starts_with(b"#")
            && !line.contains(&b'/')
            && !line.contains(&0)
            && line.len() <= 200
            && line != b"."
            && line != b"..";
        if !ok || !seen.insert(line.to_vec()) {
            continue;
        }
        let name = bytes_name(line);
        let rel = dir.join(name);
        fs::write(root.join(&rel), line).unwrap();
        out.push(rel);
    }
    assert!(out.len() > 300, "{} naughty names", out.len());
    out
}

fn bytes_name(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

#[tokio::test]
async fn corpus_and_hostile_files_end_registered_or_failed_with_a_reason() {
    let env = Env::new(None).await;
    let folders = env.folder(|f| f.rescan_secs = 1).await;
    let root = folders[0].path.clone();
    let rules = IgnoreRules::new(DEFAULT_IGNORE);
    let mut expect: BTreeMap<PathBuf, Expect> = BTreeMap::new();
    let by_name = |rel: &Path| if rules.matches_path(rel) { Expect::Ignored } else { Expect::Processed };

    // Written before the watcher starts (found by the start scan) and while it runs (events).
    for rel in copy_corpus(&root) {
        expect.insert(rel.clone(), by_name(&rel));
    }
    let w = env.start(folders);
    for rel in naughty_names(&root) {
        expect.insert(rel.clone(), by_name(&rel));
    }
    let invalid_utf8 = bytes_name(b"caf\xe9-\xff\xfe.txt");
    let long = PathBuf::from(format!("{}.txt", "l".repeat(250)));
    let plain: Vec<(PathBuf, Vec<u8>)> = vec![
        ("empty.bin".into(), Vec::new()),
        ("nul.bin".into(), b"\0\0\0abc\0def\0".to_vec()),
        (invalid_utf8.clone(), b"named badly".to_vec()),
        ("line\nbreak.txt".into(), b"newline in the name".to_vec()),
        ("CON.txt".into(), b"reserved on Windows".to_vec()),
        ("a<b>:c|d?.txt".into(), b"forbidden on Windows".to_vec()),
        ("  spaces  .txt".into(), b"spaces".to_vec()),
        ("deep/a/b/c/d/e/f.txt".into(), b"deep".to_vec()),
        (long.clone(), b"long name".to_vec()),
        ("invalid-utf8-content.txt".into(), b"\xff\xfe\xc3\x28 \xa0\xa1".to_vec()),
    ];
    for (rel, body) in &plain {
        fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        fs::write(root.join(rel), body).unwrap();
        expect.insert(rel.clone(), Expect::Processed);
    }
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd-link")).unwrap();
    expect.insert("passwd-link".into(), Expect::Failed("symbolic link"));
    std::os::unix::fs::symlink("/etc", root.join("etc-dir-link")).unwrap();
    expect.insert("etc-dir-link".into(), Expect::Failed("symbolic link"));
    std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling")).unwrap();
    expect.insert("dangling".into(), Expect::Failed("symbolic link"));
    let fifo = std::process::Command::new("mkfifo").arg(root.join("a-pipe")).status().unwrap();
    assert!(fifo.success());
    expect.insert("a-pipe".into(), Expect::Failed("not a regular file"));

    let waiting = || {
        expect.iter().filter(|(rel, e)| **e != Expect::Ignored && fs::symlink_metadata(root.join(rel)).is_ok()).count()
    };
    wait_for("every file taken", || async { waiting() == 0 }).await;
    w.idle_after_rescans(3).await;

    let mut processed = 0;
    for (rel, e) in &expect {
        let at = |dir: &str| fs::symlink_metadata(root.join(dir).join(rel)).is_ok();
        match e {
            Expect::Processed => {
                assert!(at("processed"), "{} in processed/", rel.display());
                processed += 1;
            }
            Expect::Failed(why) => {
                assert!(at("failed"), "{} in failed/", rel.display());
                let mut reason = root.join("failed").join(rel).into_os_string();
                reason.push(".reason.txt");
                let text = fs::read_to_string(&reason).unwrap();
                assert!(text.contains(why), "{}: {text}", rel.display());
            }
            Expect::Ignored => assert!(root.join(rel).exists(), "{} stays", rel.display()),
        }
    }
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, processed);
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'failed'").await, 4);
    let passwd = sha256_hex(&fs::read("/etc/passwd").unwrap());
    let leaked = format!("SELECT count(*) FROM qinexus.file_versions WHERE content_sha256 = '{passwd}'");
    assert_eq!(env.count(&leaked).await, 0, "a link's target is never read");

    // The name that is not UTF-8: registered under its lossy form, its bytes in the details.
    let raw_hex = hex::encode(b"caf\xe9-\xff\xfe.txt");
    let lossy = format!(
        "SELECT count(*) FROM qiaccess.capture_events c JOIN qinexus.files f ON f.id = c.file_id \
         WHERE c.details ->> 'raw_path_hex' = '{raw_hex}' AND f.original_name = 'caf\u{fffd}-\u{fffd}\u{fffd}.txt'"
    );
    assert_eq!(env.count(&lossy).await, 1);
    assert_eq!(fs::read(root.join("processed").join(&invalid_utf8)).unwrap(), b"named badly");
    let raw = "SELECT count(*) FROM qiaccess.inbox_entries WHERE raw_path IS NOT NULL AND status = 'registered'";
    assert_eq!(env.count(raw).await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.file_versions WHERE size_bytes = 0").await, 1);
    let s = w.snapshot();
    assert_eq!(s.failed, 4, "{s:?}");
    assert_eq!((s.registered + s.duplicates) as i64, processed);
    w.stop().await;
    env.assert_consistent().await;
}

#[tokio::test]
async fn a_file_over_the_limit_goes_to_failed_and_keeps_no_blob() {
    let env = Env::new(Some(1024)).await;
    let folders = env.folder(|_| {}).await;
    let root = folders[0].path.clone();
    let w = env.start(folders);
    w.idle_after_rescans(1).await;

    let small = b"small enough".to_vec();
    fs::write(root.join("big.bin"), vec![7u8; 4096]).unwrap();
    fs::write(root.join("exact.bin"), vec![8u8; 1024]).unwrap();
    fs::write(root.join("small.txt"), &small).unwrap();

    wait_for("big.bin in failed/", || async { root.join("failed/big.bin").exists() }).await;
    wait_count(&env, "SELECT count(*) FROM qiaccess.capture_events", 2).await;
    w.idle_after_rescans(1).await;
    let reason = fs::read_to_string(root.join("failed/big.bin.reason.txt")).unwrap();
    assert!(reason.contains("larger than the registration limit of 1024 bytes"), "{reason}");
    assert!(root.join("processed/small.txt").exists() && root.join("processed/exact.bin").exists());
    let failed = "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'failed' AND relative_path = 'big.bin' \
                  AND moved_to = 'failed/big.bin' AND reason LIKE '%larger than%' AND capture_event_id IS NULL";
    assert_eq!(env.count(failed).await, 1);
    let mut want = vec![sha256_hex(&small), sha256_hex(&[8u8; 1024])];
    want.sort();
    assert_eq!(env.blob_hashes().await, want, "no blob of the refused file");
    assert_eq!(w.snapshot().failed, 1);
    w.stop().await;
    env.assert_consistent().await;
}
