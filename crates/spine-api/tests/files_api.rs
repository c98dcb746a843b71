//! Uploads, review and provenance over HTTP (issue 4 items 3, 4, 8, 9 and the bad-input corpus),
//! with a real blob directory and the real processing worker.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Env;
use serde_json::{Value, json};
use spine_core::auth::Scope;
use spine_pipeline::Supervisor;
use spine_pipeline::register::Registrar;
use spine_pipeline::worker::{Worker, WorkerConfig};
use spine_store::blob::{BlobConfig, BlobStore};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");

struct Files {
    env: Env,
    blobs: BlobStore,
    dir: tempfile::TempDir,
    key: String,
}

async fn files_env(max: u64) -> Files {
    common::init_tracing();
    let mut env = Env::new().await;
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::from_config(&BlobConfig::Local { root: dir.path().join("blobs") }).await.unwrap();
    env.state.registrar = Some(Registrar::new(env.state.store.clone(), blobs.clone(), Some(max)));
    let tenant = env.seed_tenant("files").await;
    let (key, _) = env.seed_api_key(tenant, &[Scope::IngestWrite, Scope::ReviewWrite, Scope::RecordsRead]).await;
    Files { env, blobs, dir, key }
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "spine-test-boundary-7d1f";
    let mut body = Vec::new();
    for (field, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(f: &Files, name: &str, bytes: Vec<u8>) -> common::Resp {
    let path = format!("/v1/files?name={}", common::url_encode(name));
    f.env.send_raw("POST", &path, Some("application/octet-stream"), bytes, Some(&f.key)).await
}

async fn process_all(f: &Files) {
    let handlers = spine_pipeline::process::with_handlers(
        spine_pipeline::builtin::handlers(),
        f.blobs.clone(),
        Default::default(),
    );
    let sup = Supervisor::new();
    let mut cfg = WorkerConfig::new("api-test-worker", 2);
    cfg.poll_every = Duration::from_millis(50);
    let worker = Worker::new(f.env.pool().clone(), f.env.store().clone(), handlers, cfg);
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while f
        .env
        .scalar("SELECT count(*) FROM qiserver.jobs WHERE state NOT IN ('succeeded', 'quarantined', 'cancelled')")
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "jobs did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sup.shutdown().await;
    handle.await.unwrap().unwrap();
    assert_eq!(f.env.scalar("SELECT count(*) FROM qiserver.jobs WHERE state <> 'succeeded'").await, 0);
}

#[tokio::test]
async fn raw_and_multipart_uploads_register_with_links() {
    let f = files_env(1 << 20).await;
    let r = upload(&f, "notes.txt", b"hello".to_vec()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let item = &r.json.as_ref().unwrap()["files"][0];
    assert_eq!((item["version"].as_i64(), item["duplicate"].as_bool()), (Some(1), Some(false)));
    assert_eq!(item["media_type"], "text/plain");
    let file_id = item["file_id"].as_str().unwrap();
    assert_eq!(item["links"]["file"], format!("/v1/files/{file_id}"));
    let job = f.env.send("GET", item["links"]["job"].as_str().unwrap(), None, Some(&f.key)).await;
    assert_eq!(job.status, 403, "jobs need jobs:admin: the link is still the right one");
    let shown = f.env.send("GET", &format!("/v1/files/{file_id}"), None, Some(&f.key)).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json.unwrap()["versions"][0]["content_sha256"], item["sha256"]);

    // The same bytes again: 200, a duplicate of the same file.
    let again = upload(&f, "other-name.txt", b"hello".to_vec()).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json.unwrap()["files"][0]["file_id"], file_id);

    // Two files and a forced profile in one multipart request.
    let (ct, body) = multipart(&[
        ("profile", None, b"generic_people"),
        ("file", Some("a.csv"), b"Name,Email\nAda,ada@example.org\n"),
        ("file", Some("..\\..\\b.json"), b"[{\"x\": 1}]"),
    ]);
    let m = f.env.send_raw("POST", "/v1/files", Some(&ct), body, Some(&f.key)).await;
    assert_eq!(m.status, 202, "{}", m.text);
    let files = m.json.unwrap()["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2);
    assert_eq!(files[1]["media_type"], "application/json");
    assert_eq!(
        f.env
            .scalar("SELECT count(*) FROM qinexus.import_batches WHERE profile = 'generic_people' AND forced_profile")
            .await,
        2
    );
    assert_eq!(
        f.env
            .scalar(
                "SELECT count(*) FROM qinexus.files WHERE storage_name = 'b.json' AND original_name = '..\\..\\b.json'"
            )
            .await,
        1
    );

    // Refusals: unknown profile, no file part, missing scope.
    let bad = f.env.send_raw("POST", "/v1/files?profile=nope", Some("text/csv"), b"a".to_vec(), Some(&f.key)).await;
    bad.expect(400, Some("invalid_request"), "invalid_request");
    let (ct, body) = multipart(&[("comment", None, b"no files here")]);
    f.env.send_raw("POST", "/v1/files", Some(&ct), body, Some(&f.key)).await.expect(
        400,
        Some("invalid_request"),
        "invalid_request",
    );
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT id FROM core.tenants").fetch_one(f.env.pool()).await.unwrap();
    let (reader, _) = f.env.seed_api_key(tenant, &[Scope::RecordsRead]).await;
    let denied = f.env.send_raw("POST", "/v1/files?name=x", Some("text/plain"), b"x".to_vec(), Some(&reader)).await;
    denied.expect(403, Some("forbidden"), "forbidden");
}

#[tokio::test]
async fn too_large_uploads_keep_nothing() {
    let f = files_env(1024).await;
    let r = upload(&f, "big.bin", vec![7u8; 4096]).await;
    r.expect(413, Some("payload_too_large"), "payload_too_large");
    let (ct, body) = multipart(&[("file", Some("small.txt"), b"small"), ("file", Some("big.bin"), &[1u8; 2048])]);
    f.env.send_raw("POST", "/v1/files", Some(&ct), body, Some(&f.key)).await.expect(
        413,
        Some("payload_too_large"),
        "payload_too_large",
    );
    assert_eq!(f.env.scalar("SELECT count(*) FROM qiaccess.capture_events").await, 0);
    assert_eq!(f.env.scalar("SELECT count(*) FROM qinexus.files").await, 0);
    assert_eq!(f.blobs.list_page(None, 10).await.unwrap().len(), 0, "no blob left behind, not even the small part's");
    assert!(f.blobs.sweep_temp(Duration::ZERO, false).await.unwrap().is_empty(), "no temp files left");
    drop(f.dir);
}

fn corpus_files() -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let mut out = Vec::new();
    for d in ["csv", "json", "bad-input"] {
        walk(&Path::new(CORPUS).join(d), &mut out);
    }
    out.sort();
    out
}

#[tokio::test]
async fn every_corpus_file_is_registered_and_staged_or_failed_with_a_reason() {
    let f = files_env(64 << 20).await;
    let files = corpus_files();
    assert!(files.len() > 400, "the corpus is in place ({} files)", files.len());
    for p in &files {
        let r = upload(&f, &p.to_string_lossy(), std::fs::read(p).unwrap()).await;
        assert!(r.status == 202 || r.status == 200, "{}: {} {}", p.display(), r.status, r.text);
    }
    // Traversal payloads as file names: originals kept, storage names safe.
    let names = std::fs::read_to_string(
        Path::new(CORPUS).join("bad-input/path-traversal/payloadsallthethings/directory_traversal.txt"),
    )
    .unwrap();
    for name in names.lines().filter(|l| !l.trim().is_empty()).take(150) {
        let r = upload(&f, name, format!("payload for {name}").into_bytes()).await;
        assert!(r.status == 202 || r.status == 200, "{name:?}: {} {}", r.status, r.text);
    }
    let unsafe_names = f.env.scalar("SELECT count(*) FROM qinexus.files WHERE storage_name ~ '[/\\\\]' OR storage_name LIKE '.%' OR storage_name = ''").await;
    assert_eq!(unsafe_names, 0);
    process_all(&f).await;
    // Every version is processed, or failed with its reason; nothing stays half done.
    assert_eq!(
        f.env.scalar("SELECT count(*) FROM qinexus.import_files WHERE status NOT IN ('processed', 'failed')").await,
        0
    );
    assert_eq!(
        f.env
            .scalar(
                "SELECT count(*) FROM qinexus.import_files WHERE status = 'failed' AND coalesce(error_message, '') = ''"
            )
            .await,
        0
    );
    // Structured files were staged, with their rows' problems kept.
    assert!(f.env.scalar("SELECT count(*) FROM staging.import_rows").await > 1000);
    assert!(f.env.scalar("SELECT count(*) FROM staging.import_rows WHERE parse_error IS NOT NULL").await > 0);
    // Archives are registered as files, never expanded.
    assert!(f.env.scalar("SELECT count(*) FROM qinexus.files WHERE media_type = 'application/zip'").await >= 10);
    // Every blob is referenced by a version and every version has its blob.
    let versions: Vec<String> = sqlx::query_scalar("SELECT DISTINCT content_sha256 FROM qinexus.file_versions")
        .fetch_all(f.env.pool())
        .await
        .unwrap();
    let blobs = f.blobs.list_page(None, 100_000).await.unwrap();
    assert_eq!(blobs.len(), versions.len());
    for v in &versions {
        assert!(f.blobs.exists(v).await.unwrap());
    }
}

#[tokio::test]
async fn review_promote_and_trace_over_http() {
    let f = files_env(1 << 20).await;
    let csv =
        "First Name,Last Name,Email,Company\nAda,Lovelace,ada@example.org,Analytical Engines\nBad,Row,not-an-email,\n";
    let r = upload(&f, "people.csv", csv.as_bytes().to_vec()).await;
    assert_eq!(r.status, 202);
    let batch = r.json.unwrap()["files"][0]["import_batch_id"].as_str().unwrap().to_owned();
    process_all(&f).await;
    let b = f.env.send("GET", &format!("/v1/batches/{batch}"), None, Some(&f.key)).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let b = b.json.unwrap();
    assert_eq!(
        (b["status"].as_str(), b["profile"].as_str(), b["rows_ok"].as_i64()),
        (Some("staged"), Some("generic_people"), Some(2))
    );
    let list = f.env.send("GET", &format!("/v1/review?batch={batch}&status=pending"), None, Some(&f.key)).await;
    let rows = list.json.unwrap()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    let (ada, bad) = (rows[0]["id"].as_str().unwrap().to_owned(), rows[1]["id"].as_str().unwrap().to_owned());
    assert!(!rows[1]["proposal"]["problems"].as_array().unwrap().is_empty(), "the bad email is reported: {}", rows[1]);

    let no_note = f.env.send("POST", &format!("/v1/review/{bad}/reject"), Some(&json!({})), Some(&f.key)).await;
    no_note.expect(400, Some("invalid_request"), "invalid_request");
    let rejected = f
        .env
        .send("POST", &format!("/v1/review/{bad}/reject"), Some(&json!({"note": "not a person"})), Some(&f.key))
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    let ok = f.env.send("POST", &format!("/v1/review/{ada}/approve"), Some(&json!({})), Some(&f.key)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let shown = f.env.send("GET", &format!("/v1/review/{ada}"), None, Some(&f.key)).await.json.unwrap();
    assert_eq!(shown["decisions"][0]["decision"], "approve");
    assert!(shown["decisions"][0]["decided_by"].as_str().unwrap().starts_with("api_key:"));

    let p = f.env.send("POST", &format!("/v1/batches/{batch}/promote"), None, Some(&f.key)).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let p = p.json.unwrap();
    assert_eq!((p["created"].as_i64(), p["batch_done"].as_bool()), (Some(1), Some(true)));
    let person: uuid::Uuid = sqlx::query_scalar("SELECT id FROM core.people").fetch_one(f.env.pool()).await.unwrap();
    let t = f.env.send("GET", &format!("/v1/provenance/{person}"), None, Some(&f.key)).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let t: Value = t.json.unwrap();
    assert_eq!(t["origins"][0]["import_row_id"], ada.as_str());
    assert_eq!(t["origins"][0]["original_name"], "people.csv");
    let missing = f.env.send("GET", &format!("/v1/provenance/{}", uuid::Uuid::now_v7()), None, Some(&f.key)).await;
    missing.expect(404, Some("not_found"), "not_found");
}

/// A body of `len` bytes made on the fly: `line` repeated (no memory the size of the body).
fn generated(len: u64, fill: u8, prefix: &'static [u8]) -> axum::body::Body {
    const CHUNK: usize = 1 << 20;
    let mut sent = 0u64;
    let stream = futures_util::stream::iter(std::iter::from_fn(move || {
        if sent >= len {
            return None;
        }
        let n = (len - sent).min(CHUNK as u64) as usize;
        let mut chunk = vec![fill; n];
        if sent == 0 {
            let p = prefix.len().min(n);
            chunk[..p].copy_from_slice(&prefix[..p]);
        }
        sent += n as u64;
        Some(Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)))
    }));
    axum::body::Body::from_stream(stream)
}

#[tokio::test]
async fn huge_empty_and_odd_uploads() {
    let f = files_env(2 << 30).await;
    // 1 GiB, streamed: registered whole, hashed and stored, never held in memory.
    let big = f
        .env
        .send_raw(
            "POST",
            "/v1/files?name=big.bin",
            Some("application/octet-stream"),
            generated(1 << 30, 0xA5, b""),
            Some(&f.key),
        )
        .await;
    assert_eq!(big.status, 202, "{}", big.text);
    assert_eq!(big.json.as_ref().unwrap()["files"][0]["size_bytes"], 1u64 << 30);
    // One CSV line of 100 MB: staged as one error row with the start of its text.
    let line = f
        .env
        .send_raw(
            "POST",
            "/v1/files?name=line.csv",
            Some("text/csv"),
            generated(100 << 20, b'x', b"a,b\n"),
            Some(&f.key),
        )
        .await;
    assert_eq!(line.status, 202, "{}", line.text);
    let odd: [(&str, &[u8]); 5] = [
        ("empty.csv", b""),
        ("nul.csv", b"a,b\n1,\0\n2,3\n"),
        ("latin1.csv", b"name,city\nJos\xe9,K\xf6ln\n"),
        ("ragged.csv", b"a,b,c\n1,2\n1,2,3,4\n\"open,quote\n"),
        ("CON.csv", b"a\n1\n"),
    ];
    for (name, bytes) in odd {
        let r = upload(&f, name, bytes.to_vec()).await;
        assert_eq!(r.status, 202, "{name}: {}", r.text);
    }
    process_all(&f).await;
    let rows = |name: &'static str| {
        let pool = f.env.pool().clone();
        async move {
            sqlx::query_as::<_, (i32, Option<String>, Option<String>)>(
                "SELECT r.row_number, r.parse_error, r.raw_payload::text FROM staging.import_rows r \
                 JOIN qinexus.files fl ON fl.id = r.source_file_id WHERE fl.original_name = $1 ORDER BY r.row_number",
            )
            .bind(name)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let long = rows("line.csv").await;
    assert_eq!(long.len(), 1);
    assert!(long[0].1.as_deref().unwrap_or_default().contains("limit"), "{:?}", long[0].1);
    assert!(rows("empty.csv").await.is_empty());
    assert_eq!(f.env.scalar("SELECT count(*) FROM qinexus.files WHERE original_name = 'empty.csv' AND media_type = 'application/x-empty'").await, 1);
    let nul = rows("nul.csv").await;
    assert_eq!(nul.len(), 2);
    assert!(nul[0].1.as_deref().unwrap_or_default().contains("NUL"), "{nul:?}");
    let latin = rows("latin1.csv").await;
    assert!(
        latin[0].2.as_deref().unwrap().contains("José") && latin[0].2.as_deref().unwrap().contains("Köln"),
        "{latin:?}"
    );
    let ragged = rows("ragged.csv").await;
    // Decision 0017: a short row keeps the fields it has, a long row is kept with its error.
    assert_eq!(ragged.len(), 3, "{ragged:?}");
    assert_eq!(ragged[0].2.as_deref(), Some(r#"{"a":"1","b":"2"}"#), "the object as the loader wrote it (json)");
    assert!(ragged[1].1.as_deref().unwrap_or_default().contains("4 fields"), "{ragged:?}");
    assert_eq!(
        f.env
            .scalar("SELECT count(*) FROM qinexus.files WHERE original_name = 'CON.csv' AND storage_name = '_CON.csv'")
            .await,
        1
    );
}
