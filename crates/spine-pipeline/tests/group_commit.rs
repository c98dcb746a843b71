//! Group commit of registrations (decision 0027) on a real PostgreSQL and a real blob directory:
//! many concurrent registrations end registered exactly once with their blobs, and an item that
//! fails in a group leaves no rows and no blob of its own while the others register.

use std::collections::HashSet;

use serde_json::json;
use sha2::Digest as _;
use spine_core::ids::TenantId;
use spine_pipeline::register::{RegisterError, Registrar, Staged};
use spine_store::Store;
use spine_store::blob::{BlobConfig, BlobStore};
use spine_store::repos::registration::Arrival;
use sqlx::PgPool;
use tokio::io::AsyncReadExt as _;

struct Env {
    _db: spine_testkit::TestDb,
    _dir: tempfile::TempDir,
    pool: PgPool,
    blobs: BlobStore,
    reg: Registrar,
    tenant: TenantId,
}

async fn env() -> Env {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    spine_testkit::add_tenant(&db.pool, tenant.as_uuid(), "grp").await;
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::from_config(&BlobConfig::Local { root: dir.path().join("blobs") }).await.unwrap();
    let reg = Registrar::new(Store::new(db.pool.clone()), blobs.clone(), Some(1 << 20));
    Env { pool: db.pool.clone(), _db: db, _dir: dir, blobs, reg, tenant }
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

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
}

async fn stage(reg: &Registrar, name: &str, bytes: &[u8]) -> Staged {
    reg.stage(name, json!({}), bytes).await.unwrap()
}

fn sha(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn blob_count(blobs: &BlobStore) -> usize {
    blobs.list_page(None, 10_000).await.unwrap().len()
}

async fn blob_sha(blobs: &BlobStore, sha256: &str) -> String {
    let mut bytes = Vec::new();
    blobs.open(sha256).await.unwrap().read_to_end(&mut bytes).await.unwrap();
    sha(&bytes)
}

fn content(i: usize) -> Vec<u8> {
    format!("content {i}\n").repeat(1 + i % 7).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_are_each_registered_once_with_their_blobs() {
    let env = env().await;
    const CALLERS: usize = 60;
    const DISTINCT: usize = 40;
    // Each caller commits 1 to 3 items; contents repeat across callers (the same bytes under
    // other names are duplicates), names never do.
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (reg, tenant) = (env.reg.clone(), env.tenant);
            tokio::spawn(async move {
                let mut staged = Vec::new();
                for k in 0..(1 + c % 3) {
                    let i = (c * 3 + k) % DISTINCT;
                    staged.push(stage(&reg, &format!("caller{c}-item{k}.txt"), &content(i)).await);
                }
                reg.commit(tenant, &arrival(), staged).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let total: usize = (0..CALLERS).map(|c| 1 + c % 3).sum();
    let mut captures = HashSet::new();
    let mut contents = HashSet::new();
    for (c, res) in results.iter().enumerate() {
        assert_eq!(res.len(), 1 + c % 3);
        for (k, r) in res.iter().enumerate() {
            let r = r.as_ref().unwrap_or_else(|e| panic!("caller {c} item {k}: {e}"));
            assert_eq!(r.original_name, format!("caller{c}-item{k}.txt"));
            let expected = content((c * 3 + k) % DISTINCT);
            assert_eq!(r.sha256, sha(&expected));
            assert!(captures.insert(r.capture_id));
            contents.insert(r.sha256.clone());
        }
    }
    let distinct = contents.len() as i64;
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiaccess.capture_events").await, total as i64);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiaccess.capture_events WHERE NOT is_duplicate").await, distinct);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.file_versions").await, distinct);
    assert_eq!(
        count(&env.pool, "SELECT count(*) FROM qiserver.jobs WHERE kind = 'spine.file.process'").await,
        distinct
    );
    let versions: Vec<String> =
        sqlx::query_scalar("SELECT content_sha256 FROM qinexus.file_versions").fetch_all(&env.pool).await.unwrap();
    for v in &versions {
        assert_eq!(&blob_sha(&env.blobs, v).await, v, "the blob holds the bytes of its hash");
    }
    assert_eq!(blob_count(&env.blobs).await as i64, distinct, "one blob per content");
}

#[tokio::test]
async fn a_failing_item_fails_alone_and_leaves_nothing_of_its_own() {
    let env = env().await;
    // A NUL character cannot be stored in jsonb: the capture of that item fails in the database,
    // which fails the group's transaction; the group then registers each item alone.
    let bad = |name: &str, bytes: &'static [u8]| {
        let reg = env.reg.clone();
        let name = name.to_owned();
        async move { reg.stage(&name, json!({"note": "nul \u{0} here"}), bytes).await.unwrap() }
    };
    let items = vec![
        stage(&env.reg, "good-1.txt", b"good one").await,
        bad("bad-own-bytes.txt", b"bytes only the bad item has").await,
        stage(&env.reg, "good-2.txt", b"good two").await,
        bad("bad-shared-bytes.txt", b"bytes a good item shares").await,
        stage(&env.reg, "good-3.txt", b"bytes a good item shares").await,
    ];
    let res = env.reg.commit(env.tenant, &arrival(), items).await;
    let ok: Vec<bool> = res.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [true, false, true, false, true], "{res:?}");
    assert!(matches!(res[1], Err(RegisterError::Store(_))), "{:?}", res[1]);

    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiaccess.capture_events").await, 3);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.files WHERE original_name LIKE 'bad%'").await, 0);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.import_batches").await, 3);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiserver.jobs").await, 3);
    assert!(
        !env.blobs.exists(&sha(b"bytes only the bad item has")).await.unwrap(),
        "the failed item's blob is removed"
    );
    assert!(env.blobs.exists(&sha(b"bytes a good item shares")).await.unwrap(), "a blob a registered item uses stays");
    assert_eq!(blob_count(&env.blobs).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tenant_does_not_fail_another_tenants_items() {
    let env = env().await;
    // A tenant that does not exist breaks the foreign keys of its registration.
    let ghost = TenantId::new();
    let ghost_items = vec![stage(&env.reg, "ghost.txt", b"ghost bytes").await];
    let good_items = vec![stage(&env.reg, "real.txt", b"real bytes").await];
    let arrival = arrival();
    let (ghost_res, good_res) =
        tokio::join!(env.reg.commit(ghost, &arrival, ghost_items), env.reg.commit(env.tenant, &arrival, good_items));
    assert!(ghost_res[0].is_err());
    assert!(good_res[0].as_ref().is_ok_and(|r| !r.duplicate));
    assert!(!env.blobs.exists(&sha(b"ghost bytes")).await.unwrap());
    assert!(env.blobs.exists(&sha(b"real bytes")).await.unwrap());
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiaccess.capture_events").await, 1);

    // Too large: refused when staged, nothing kept.
    let big = vec![b'a'; (1 << 20) + 1];
    let err = env.reg.stage("big.bin", json!({}), &big[..]).await.unwrap_err();
    assert_eq!(err.too_large(), Some(1 << 20));
    assert!(!env.blobs.exists(&sha(&big)).await.unwrap());
}

#[tokio::test]
async fn a_blob_that_fails_to_flush_fails_alone_and_the_rows_written_meanwhile_are_rolled_back() {
    let env = env().await;
    // The group's rows are written while its bytes are flushed. A file where one blob's shard
    // directory belongs makes linking that blob fail in the flush, after its rows were written.
    let doomed: &[u8] = b"bytes whose shard cannot be made";
    let (good_1, good_2): (&[u8], &[u8]) = (b"good bytes one", b"good bytes two");
    let h = sha(doomed);
    assert!([good_1, good_2].iter().all(|g| sha(g)[..2] != h[..2]), "the good blobs need other shards");
    let shards = env._dir.path().join("blobs").join("sha256");
    std::fs::create_dir_all(&shards).unwrap();
    std::fs::write(shards.join(&h[..2]), b"not a directory").unwrap();

    let items = vec![
        stage(&env.reg, "good-1.txt", good_1).await,
        stage(&env.reg, "doomed.txt", doomed).await,
        stage(&env.reg, "good-2.txt", good_2).await,
    ];
    let res = env.reg.commit(env.tenant, &arrival(), items).await;
    assert!(res[0].is_ok() && res[2].is_ok(), "{res:?}");
    assert!(matches!(res[1], Err(RegisterError::Blob(_))), "{:?}", res[1]);

    for table in ["qiaccess.capture_events", "qinexus.files", "qinexus.file_versions", "qinexus.import_batches"] {
        assert_eq!(count(&env.pool, &format!("SELECT count(*) FROM {table}")).await, 2, "{table}");
    }
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qiserver.jobs").await, 2);
    assert_eq!(count(&env.pool, "SELECT count(*) FROM qinexus.files WHERE original_name = 'doomed.txt'").await, 0);
    std::fs::remove_file(shards.join(&h[..2])).unwrap();
    assert!(!env.blobs.exists(&h).await.unwrap());
    assert_eq!(blob_count(&env.blobs).await, 2);
    let temps = std::fs::read_dir(env._dir.path().join("blobs").join("tmp")).unwrap().count();
    assert_eq!(temps, 0, "no temp file is left behind");
}
