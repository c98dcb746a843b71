//! Registration → processing → review → promotion → provenance, on a real PostgreSQL and a real
//! blob directory, with the real Google Contacts fixture from the corpus.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spine_core::ids::TenantId;
use spine_pipeline::Supervisor;
use spine_pipeline::process;
use spine_pipeline::register::Registrar;
use spine_pipeline::review;
use spine_pipeline::worker::{StatsSnapshot, Worker, WorkerConfig};
use spine_store::Store;
use spine_store::blob::{BlobConfig, BlobStore};
use spine_store::repos::registration::{Arrival, Registered};
use sqlx::PgPool;
use uuid::Uuid;

const GMAIL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/csv/contacts/roundcube/gmail.csv");

struct Env {
    _db: spine_testkit::TestDb,
    _dir: tempfile::TempDir,
    pool: PgPool,
    store: Store,
    blobs: BlobStore,
    reg: Registrar,
    tenant: TenantId,
}

async fn env() -> Env {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, 'reg', 'Reg')")
        .bind(tenant.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::from_config(&BlobConfig::Local { root: dir.path().join("blobs") }).await.unwrap();
    let store = Store::new(db.pool.clone());
    let reg = Registrar::new(store.clone(), blobs.clone(), Some(1 << 20));
    Env { pool: db.pool.clone(), _db: db, _dir: dir, store, blobs, reg, tenant }
}

fn arrival() -> Arrival {
    Arrival {
        ingress_kind: "upload",
        source_key: "upload".into(),
        source_display_name: "Uploads".into(),
        route: "/v1/files".into(),
        device_id: None,
        captured_by: "api_key:test".into(),
        profile: None,
    }
}

async fn put(env: &Env, name: &str, bytes: &[u8]) -> Registered {
    env.reg.register_one(env.tenant, &arrival(), name, json!({}), bytes).await.unwrap()
}

/// Runs a worker with the processing handler until every job has finished.
async fn process_all(env: &Env) -> StatsSnapshot {
    let handlers = process::with_handlers(spine_pipeline::builtin::handlers(), env.blobs.clone(), Default::default());
    let sup = Supervisor::new();
    let mut cfg = WorkerConfig::new("test-worker", 2);
    cfg.poll_every = Duration::from_millis(50);
    let worker = Worker::new(env.pool.clone(), env.store.clone(), handlers, cfg);
    let stats = worker.stats();
    let handle = tokio::spawn(worker.run(sup.shutdown_handle()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM qiserver.jobs WHERE state NOT IN ('succeeded', 'quarantined', 'cancelled')",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sup.shutdown().await;
    handle.await.unwrap().unwrap();
    let bad: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT state, last_error_message FROM qiserver.jobs WHERE state <> 'succeeded'")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert!(bad.is_empty(), "jobs failed: {bad:?}");
    stats.snapshot()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn versions_duplicates_and_one_transaction() {
    let env = env().await;
    let a = put(&env, "report.txt", b"first bytes").await;
    assert!(!a.duplicate);
    assert_eq!((a.version, a.media_type.as_str()), (1, "text/plain"));
    assert!(a.import_batch_id.is_some() && a.job_id.is_some());
    // Same name, new bytes → version 2 of the same file.
    let b = put(&env, "report.txt", b"second bytes").await;
    assert_eq!((b.file_id, b.version, b.duplicate), (a.file_id, 2, false));
    // Identical bytes under another name → a duplicate capture pointing at the existing version.
    let c = put(&env, "copy-of-report.txt", b"first bytes").await;
    assert_eq!((c.file_id, c.version, c.duplicate, c.import_batch_id, c.job_id), (a.file_id, 1, true, None, None));
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.files").await, 1);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.file_versions").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiaccess.capture_events").await, 3);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiaccess.capture_events WHERE is_duplicate").await, 1);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.import_batches").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiserver.jobs WHERE kind = 'spine.file.process'").await, 2);
    // Traversal names keep the original and get a safe storage name.
    let d = put(&env, "../../etc/CON.csv", b"x,y\n1,2\n").await;
    let (orig, stored): (String, String) =
        sqlx::query_as("SELECT original_name, storage_name FROM qinexus.files WHERE id = $1")
            .bind(d.file_id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!((orig.as_str(), stored.as_str()), ("../../etc/CON.csv", "_CON.csv"));
}

/// A file with nothing to stage is finished by the statement that locks it: its batch entry and
/// file become `processed`, its batch `registered`; a second run of its job changes nothing, and
/// a structured file next to it still goes through staging.
#[tokio::test]
async fn unstaged_files_finish_in_the_locking_statement_and_a_rerun_changes_nothing() {
    let env = env().await;
    let bin = put(&env, "photo.bin", &[0u8, 159, 146, 150, 0, 1, 2, 3]).await;
    let csv = put(&env, "people.csv", b"name,email\nAda,ada@example.org\n").await;
    let stats = process_all(&env).await;
    // The binary file's job ended in its handler's own transaction; the CSV's through the worker.
    assert_eq!((stats.succeeded, stats.succeeded_in_handler), (2, 1), "{stats:?}");
    let job: (String, bool, bool, Option<String>) = sqlx::query_as(
        "SELECT state, lease_expires_at IS NULL, finished_at >= started_at, last_error_message \
         FROM qiserver.jobs WHERE file_id = $1",
    )
    .bind(bin.file_id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(job, ("succeeded".to_owned(), true, true, None));
    let state = |file: Uuid| {
        let pool = env.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, String, Option<String>)>(
                "SELECT i.status, f.status, b.status, i.error_message FROM qinexus.import_files i \
                 JOIN qinexus.files f ON f.id = i.file_id JOIN qinexus.import_batches b ON b.id = i.import_batch_id \
                 WHERE i.file_id = $1",
            )
            .bind(file)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let done = ("processed".to_owned(), "processed".to_owned(), "registered".to_owned(), None);
    assert_eq!(state(bin.file_id).await, done);
    let (_, _, csv_batch, _) = state(csv.file_id).await;
    assert_ne!(csv_batch, "registered", "the CSV's batch is staged, not merely registered");
    assert_eq!(count(&env.pool, "SELECT count(*) FROM staging.import_rows").await, 1);
    // Run the binary file's job again: it finds the file processed and leaves everything as is.
    sqlx::query("UPDATE qiserver.jobs SET state = 'queued', run_at = now(), attempts = 0 WHERE file_id = $1")
        .bind(bin.file_id)
        .execute(&env.pool)
        .await
        .unwrap();
    process_all(&env).await;
    assert_eq!(state(bin.file_id).await, done);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM staging.import_rows").await, 1);
}

/// The processing statement records its job's success only while the attempt holds its lease;
/// the file is finished either way (the job's holder records its end).
#[tokio::test]
async fn the_processing_statement_ends_its_job_only_under_the_lease() {
    use spine_store::queue::Lease;
    use spine_store::repos::processing::{self, ProcessItem};
    let env = env().await;
    let a = put(&env, "a.bin", &[0u8, 1, 2, 3]).await;
    let b = put(&env, "b.bin", &[0u8, 1, 2, 4]).await;
    // Both jobs are attempt 1 of worker w1.
    sqlx::query(
        "UPDATE qiserver.jobs SET state = 'running', attempts = 1, lease_owner = 'w1', \
         lease_expires_at = now() + interval '1 minute' WHERE file_id = ANY($1)",
    )
    .bind(vec![a.file_id, b.file_id])
    .execute(&env.pool)
    .await
    .unwrap();
    // One statement for both, as a worker's batch runs them: a's lease is another worker's.
    let item = |r: &Registered, worker: &str| ProcessItem {
        import_batch_id: r.import_batch_id.unwrap(),
        file_id: r.file_id,
        version: r.version,
        lease: Some(Lease { job_id: r.job_id.unwrap(), worker: worker.into(), attempt: 1 }),
    };
    let mut tx = env.store.tenant_tx(env.tenant).await.unwrap();
    let done =
        processing::lock_and_finish_unstaged(&mut tx, &[item(&a, "w2"), item(&b, "w1")], &["text/csv"]).await.unwrap();
    tx.commit().await.unwrap();
    let seen: Vec<_> = done.iter().map(|l| l.as_ref().map(|l| (l.file.id, l.finished, l.job_succeeded))).collect();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen.iter().map(|s| s.map(|(_, f, j)| (f, j))).collect::<Vec<_>>(),
        vec![Some((true, false)), Some((true, true))]
    );
    let rows: Vec<(Uuid, String, bool, String)> = sqlx::query_as(
        "SELECT j.file_id, j.state, j.lease_expires_at IS NULL, f.status FROM qiserver.jobs j \
         JOIN qinexus.files f ON f.id = j.file_id WHERE j.file_id = ANY($1) ORDER BY j.file_id = $2 DESC",
    )
    .bind(vec![a.file_id, b.file_id])
    .bind(a.file_id)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (a.file_id, "running".to_owned(), false, "processed".to_owned()),
            (b.file_id, "succeeded".to_owned(), true, "processed".to_owned()),
        ]
    );
}

/// One arrival of several items, registered with one statement per table: a duplicate of an
/// item earlier in the same arrival, and a new version of a file the same arrival created.
#[tokio::test]
async fn one_arrival_with_duplicates_and_versions_of_its_own_items() {
    use sha2::{Digest, Sha256};
    use spine_store::repos::registration::{self, StoredItem};
    let env = env().await;
    let item = |name: &str, bytes: &[u8]| StoredItem {
        original_name: name.into(),
        storage_name: name.into(),
        sha256: format!("{:x}", Sha256::digest(bytes)),
        size: bytes.len() as u64,
        media_type: "text/plain".into(),
        details: json!({"n": name}),
    };
    let items = [item("a.txt", b"one"), item("b.txt", b"one"), item("a.txt", b"two"), item("c.txt", b"two")];
    let mut tx = env.store.tenant_tx(env.tenant).await.unwrap();
    let r = registration::register(&mut tx, &arrival(), &items).await.unwrap();
    tx.commit().await.unwrap();
    let seen: Vec<_> =
        r.iter().map(|x| (x.version, x.duplicate, x.job_id.is_some(), x.import_batch_id.is_some())).collect();
    assert_eq!(
        seen,
        vec![(1, false, true, true), (1, true, false, false), (2, false, true, true), (2, true, false, false)]
    );
    assert_eq!((r[1].file_id, r[2].file_id, r[3].file_id), (r[0].file_id, r[0].file_id, r[0].file_id));
    assert_ne!(r[0].job_id, r[2].job_id);
    let jobs: Vec<(Uuid, Value)> =
        sqlx::query_as("SELECT id, payload FROM qiserver.jobs ORDER BY id").fetch_all(&env.pool).await.unwrap();
    assert_eq!(jobs.len(), 2);
    for (x, (id, payload)) in [&r[0], &r[2]].into_iter().zip(&jobs) {
        assert_eq!(x.job_id, Some(*id));
        assert_eq!(payload["version"], json!(x.version));
        assert_eq!(payload["import_batch_id"], json!(x.import_batch_id.unwrap()));
    }
    let captures: Vec<(Uuid, bool, Option<i32>, Value)> =
        sqlx::query_as("SELECT id, is_duplicate, file_version, details FROM qiaccess.capture_events ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let got: Vec<_> =
        captures.iter().map(|(id, d, v, det)| (*id, *d, *v, det["n"].clone(), det["size_bytes"].clone())).collect();
    let want: Vec<_> = r
        .iter()
        .zip(&items)
        .map(|(x, i)| (x.capture_id, x.duplicate, Some(x.version), json!(i.original_name), json!(3)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.file_versions").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.import_files").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.import_batches").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.files WHERE current_version = 2").await, 1);
}

#[tokio::test]
async fn a_failed_registration_leaves_no_rows_and_no_blob() {
    let env = env().await;
    // Too large: nothing is kept at all.
    let big = vec![b'a'; (1 << 20) + 1];
    let err = env.reg.register_one(env.tenant, &arrival(), "big.bin", json!({}), &big[..]).await.unwrap_err();
    assert_eq!(err.too_large(), Some(1 << 20));
    // A registration whose transaction fails (a tenant that does not exist breaks the foreign
    // keys) removes the blob it created.
    let ghost = TenantId::new();
    let pending = env.reg.put("ghost.txt", json!({}), &b"ghost bytes"[..]).await.unwrap();
    let sha = pending.item().sha256.clone();
    assert!(env.blobs.exists(&sha).await.unwrap());
    assert!(env.reg.register(ghost, &arrival(), vec![pending]).await.is_err());
    assert!(!env.blobs.exists(&sha).await.unwrap(), "the orphan blob was removed");
    for table in
        ["qiaccess.capture_events", "qinexus.files", "qinexus.file_versions", "qinexus.import_batches", "qiserver.jobs"]
    {
        assert_eq!(count(&env.pool, &format!("SELECT count(*) FROM {table}")).await, 0, "{table}");
    }
    // A blob that a registered version uses is kept even if a later arrival of it fails.
    put(&env, "kept.txt", b"kept").await;
    let again = env.reg.put("again.txt", json!({}), &b"kept"[..]).await.unwrap();
    let sha = again.item().sha256.clone();
    env.reg.discard(vec![again]).await;
    assert!(env.blobs.exists(&sha).await.unwrap());
}

#[tokio::test]
async fn google_contacts_export_to_people_with_provenance() {
    let env = env().await;
    let bytes = std::fs::read(GMAIL).unwrap();
    let r = put(&env, "contacts.csv", &bytes).await;
    assert_eq!(r.media_type, "text/csv");
    process_all(&env).await;
    let batch = r.import_batch_id.unwrap();
    let (status, profile): (String, Option<String>) =
        sqlx::query_as("SELECT status, profile FROM qinexus.import_batches WHERE id = $1")
            .bind(batch)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), profile.as_deref()), ("staged", Some("google_contacts_legacy")));
    let rows: Vec<(Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, review_status, proposed_action FROM staging.import_rows WHERE import_batch_id = $1 ORDER BY row_number")
            .bind(batch)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "the fixture holds one contact (with multi-line cells)");
    assert_eq!((rows[0].1.as_str(), rows[0].2.as_deref()), ("pending", Some("create")));

    // Nothing canonical before promotion; approving and promoting writes the person.
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.people").await, 0);
    let approved = review::bulk_approve(&env.store, env.tenant, batch, None, None, "user:reviewer").await.unwrap();
    assert_eq!(approved.len(), 1);
    let report = review::promote_batch(&env.store, env.tenant, batch, "user:reviewer").await.unwrap();
    assert_eq!((report.rows, report.created, report.merged), (1, 1, 0));
    assert!(report.batch_done);
    let person: (Uuid, String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT id, full_name, given_name, family_name FROM core.people")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(person.1, "Prefix Firstname Middle Lastname Suffix");
    assert_eq!((person.2.as_deref(), person.3.as_deref()), (Some("Firstname"), Some("Lastname")));
    let emails: Vec<String> = sqlx::query_scalar(
        "SELECT normalized_value FROM core.identifiers WHERE identifier_kind = 'email' AND entity_id = $1 ORDER BY 1",
    )
    .bind(person.0)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(emails, ["home@aaa.pl", "other@email.com", "unknown@email.com", "work@email.pl"]);
    let org: String = sqlx::query_scalar(
        "SELECT o.legal_name FROM core.relationships r JOIN core.organizations o ON o.id = r.target_entity_id \
         WHERE r.source_entity_id = $1 AND r.relationship_type = 'works_at'",
    )
    .bind(person.0)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(org, "company");

    // Provenance: person → staged row → batch → file version → blob → capture.
    let mut tx = env.store.tenant_tx(env.tenant).await.unwrap();
    let trace = spine_store::repos::provenance::trace(&mut tx, person.0).await.unwrap().unwrap();
    let o = &trace["origins"][0];
    assert_eq!(o["import_row_id"], json!(rows[0].0));
    assert_eq!(o["import_batch_id"], json!(batch));
    assert_eq!(o["file_id"], json!(r.file_id));
    assert_eq!(o["content_sha256"], json!(r.sha256));
    assert_eq!(o["capture_event_id"], json!(r.capture_id));
    assert_eq!((o["ingress_kind"].as_str(), o["captured_by"].as_str()), (Some("upload"), Some("api_key:test")));
    // Forward from the file: the person, its identifiers, the organization, the relationship.
    let fwd = spine_store::repos::provenance::trace(&mut tx, r.file_id).await.unwrap().unwrap();
    let tables: Vec<&str> =
        fwd["derived"].as_array().unwrap().iter().filter_map(|d| d["record_table"].as_str()).collect();
    for t in ["core.people", "core.identifiers", "core.organizations", "core.relationships"] {
        assert!(tables.contains(&t), "{t} in {tables:?}");
    }
    drop(tx);

    // Idempotent: promoting again, or uploading the same file again, adds nothing.
    let again = review::promote_batch(&env.store, env.tenant, batch, "user:reviewer").await.unwrap();
    assert_eq!(again.rows, 0);
    assert!(put(&env, "contacts (1).csv", &bytes).await.duplicate);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.people").await, 1);
    assert_eq!(
        count(&env.pool, "SELECT count(*) FROM core.identifiers").await as usize,
        identifiers_of(&env, person.0).await
    );
}

async fn identifiers_of(env: &Env, id: Uuid) -> usize {
    count(&env.pool, &format!("SELECT count(*) FROM core.identifiers WHERE entity_id = '{id}'")).await as usize
}

const PEOPLE_V1: &str = "First Name,Last Name,Email,Phone,Company\n\
Ada,Lovelace,ada@example.org,+44 20 7946 0000,Analytical Engines\n\
Charles,Babbage,charles@example.org,,Analytical Engines\n\
Ada,L.,ADA@example.org,,\n";
const PEOPLE_V2: &str = "First Name,Last Name,Email,Phone,Company\n\
Ada,Lovelace,ada@example.org,+44 20 7946 0000,Analytical Engines\n\
Charles,Babbage,charles@example.org,+44 20 7946 0001,Analytical Engines\n\
Grace,Hopper,grace@example.org,,\n";

#[tokio::test]
async fn reimport_merges_instead_of_duplicating_and_reviews_need_notes() {
    let env = env().await;
    let r1 = put(&env, "people.csv", PEOPLE_V1.as_bytes()).await;
    process_all(&env).await;
    let b1 = r1.import_batch_id.unwrap();
    // A reject needs a note; so does approving a merge.
    let rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM staging.import_rows WHERE import_batch_id = $1 ORDER BY row_number")
            .bind(b1)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let err = review::reject(&env.store, env.tenant, rows[1], None, "user:r").await.unwrap_err();
    assert!(err.to_string().contains("note"), "{err}");
    review::bulk_approve(&env.store, env.tenant, b1, None, None, "user:r").await.unwrap();
    let rep = review::promote_batch(&env.store, env.tenant, b1, "user:r").await.unwrap();
    // The third row has Ada's email (other case): promoted into the person the first row made.
    assert_eq!((rep.created, rep.merged), (2, 1), "{rep:?}");
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.people").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.organizations").await, 1);

    // Version 2 of the file: Ada and Charles are proposed as merges with evidence, Grace as new.
    let r2 = put(&env, "people.csv", PEOPLE_V2.as_bytes()).await;
    assert_eq!((r2.file_id, r2.version), (r1.file_id, 2));
    process_all(&env).await;
    let b2 = r2.import_batch_id.unwrap();
    let props: Vec<(String, Option<Value>)> = sqlx::query_as(
        "SELECT proposed_action, match_evidence FROM staging.import_rows WHERE import_batch_id = $1 ORDER BY row_number",
    )
    .bind(b2)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let actions: Vec<&str> = props.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(actions, ["merge", "merge", "create"]);
    assert_eq!(props[0].1.as_ref().unwrap()["exact"], json!(true));
    let err = review::bulk_approve(&env.store, env.tenant, b2, None, None, "user:r").await.unwrap_err();
    assert!(err.to_string().contains("note"), "{err}");
    review::bulk_approve(&env.store, env.tenant, b2, None, Some("same people, new export"), "user:r").await.unwrap();
    let rep = review::promote_batch(&env.store, env.tenant, b2, "user:r").await.unwrap();
    assert_eq!((rep.created, rep.merged), (1, 2), "{rep:?}");
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.people").await, 3);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.identifiers WHERE identifier_kind = 'email'").await, 3);
    // Charles gained his phone from version 2; nothing was duplicated.
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.identifiers WHERE identifier_kind = 'phone'").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM core.relationships").await, 2);
    let decisions = count(&env.pool, "SELECT count(*) FROM qinexus.review_decisions WHERE decided_by = 'user:r'").await;
    assert!(decisions >= 12, "every approval and promotion is recorded: {decisions}");
}

#[tokio::test]
async fn exact_matches_auto_approve_when_the_tenant_says_so() {
    let env = env().await;
    let r1 = put(&env, "people.csv", PEOPLE_V1.as_bytes()).await;
    process_all(&env).await;
    review::bulk_approve(&env.store, env.tenant, r1.import_batch_id.unwrap(), None, None, "user:r").await.unwrap();
    review::promote_batch(&env.store, env.tenant, r1.import_batch_id.unwrap(), "user:r").await.unwrap();
    sqlx::query("UPDATE core.tenants SET auto_approve_exact_matches = true").execute(&env.pool).await.unwrap();
    let r2 = put(&env, "people.csv", PEOPLE_V2.as_bytes()).await;
    process_all(&env).await;
    let statuses: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT review_status, decided_by FROM staging.import_rows WHERE import_batch_id = $1 ORDER BY row_number",
    )
    .bind(r2.import_batch_id.unwrap())
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(statuses[0], ("approved".to_owned(), Some("policy:auto_approve".to_owned())));
    assert_eq!(statuses[1].0, "approved");
    assert_eq!(statuses[2], ("pending".to_owned(), None), "a new person still waits for a reviewer");
}
