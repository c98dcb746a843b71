//! The vault on a real PostgreSQL: round trip, tampering and moved ciphertexts detected, tenant
//! isolation, access events, online rotation under concurrent reads, resumed rotation, key
//! retirement, and a scan of every column of every table for the plaintext and the key.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use spine_core::ids::TenantId;
use spine_core::secret::Secret;
use spine_core::vault::{Keyring, MasterKey, VaultError};
use spine_store::Store;
use spine_store::vault::{self, Access, RotateOptions, SecretOwner, VaultStoreError};
use sqlx::Row;
use uuid::Uuid;
use zeroize::Zeroizing;

const CANARY: &str = "canary-vault-plaintext-5d1e9b";

fn key(id: &str, byte: u8) -> MasterKey {
    MasterKey::new(id, Zeroizing::new([byte; 32])).unwrap()
}

fn ring(keys: &[(&str, u8)], active: &str) -> Keyring {
    Keyring::new(keys.iter().map(|(id, b)| key(id, *b)).collect(), active).unwrap()
}

async fn tenant(pool: &sqlx::PgPool, slug: &str) -> TenantId {
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, $2)")
        .bind(t.as_uuid())
        .bind(slug)
        .execute(pool)
        .await
        .unwrap();
    t
}

async fn setup(keyring: &Keyring) -> (spine_testkit::TestDb, Store, TenantId) {
    let db = spine_testkit::test_db().await;
    let t = tenant(&db.pool, "va").await;
    let store = Store::new(db.pool.clone());
    vault::sync_keys(&store, keyring).await.unwrap();
    (db, store, t)
}

fn owner(id: Uuid) -> SecretOwner<'static> {
    SecretOwner { kind: "connection", id, field: "api_token" }
}

const WHY: Access<'static> =
    Access { purpose: "test read", actor: "user:tester", connection_id: None, job_id: None, request_id: Some("req-1") };

async fn put(store: &Store, keyring: &Keyring, t: TenantId, o: SecretOwner<'_>, value: &str) -> vault::SecretMeta {
    let mut tx = store.tenant_tx(t).await.unwrap();
    let m = vault::put(&mut tx, keyring, o, &Secret::new(value), Some("user:tester")).await.unwrap();
    tx.commit().await.unwrap();
    m
}

async fn get(store: &Store, k: &Keyring, t: TenantId, o: SecretOwner<'_>) -> Result<String, VaultStoreError> {
    vault::read(store, k, t, o, None, &WHY).await.map(|p| String::from_utf8(p.expose().to_vec()).unwrap())
}

fn is_decrypt_error(r: Result<String, VaultStoreError>) -> bool {
    matches!(r, Err(VaultStoreError::Secret { source: VaultError::Decrypt(_), .. }))
}

#[tokio::test]
async fn round_trip_replace_and_destroy() {
    let k = ring(&[("k1", 1)], "k1");
    let (db, store, t) = setup(&k).await;
    let o = owner(Uuid::now_v7());
    let m = put(&store, &k, t, o, CANARY).await;
    assert_eq!((m.version, m.key_id.as_str()), (1, "k1"));
    assert_eq!(get(&store, &k, t, o).await.unwrap(), CANARY);

    let mut tx = store.tenant_tx(t).await.unwrap();
    let again = vault::put(&mut tx, &k, o, &Secret::new("x"), None).await;
    assert!(matches!(again, Err(VaultStoreError::Conflict(_))), "{again:?}");
    drop(tx);

    let mut tx = store.tenant_tx(t).await.unwrap();
    let m2 = vault::replace(&mut tx, &k, o, &Secret::new("second"), Duration::from_secs(3600), None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(m2.version, 2);
    assert_eq!(get(&store, &k, t, o).await.unwrap(), "second");
    let old = vault::read(&store, &k, t, o, Some(1), &WHY).await.unwrap();
    assert_eq!(&old.expose()[..], CANARY.as_bytes(), "the old version is readable during the grace period");
    assert_eq!(vault::destroy_expired(&store).await.unwrap(), 0);
    sqlx::query("UPDATE qivault.secrets SET destroy_after = now() - interval '1 s' WHERE version = 1")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(vault::destroy_expired(&store).await.unwrap(), 1);
    assert!(matches!(vault::read(&store, &k, t, o, Some(1), &WHY).await, Err(VaultStoreError::NotFound(_))));

    let events =
        sqlx::query("SELECT purpose, actor, request_id, version FROM qivault.access_events ORDER BY occurred_at")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(events.len(), 3, "one event per decryption");
    assert_eq!(events[0].get::<String, _>("purpose"), "test read");
    assert_eq!(events[0].get::<String, _>("actor"), "user:tester");
    assert_eq!(events[2].get::<i32, _>("version"), 1);
    let mut tx = store.tenant_tx(t).await.unwrap();
    let versions = vault::list(&mut tx, "connection", o.id).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2]);
    assert_eq!(vault::delete_owner(&mut tx, "connection", o.id).await.unwrap(), 1);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn tampering_in_the_database_is_detected() {
    let k = ring(&[("k1", 1), ("k2", 2)], "k1");
    let (db, store, t) = setup(&k).await;
    let cases = [
        "ciphertext = set_byte(ciphertext, 3, get_byte(ciphertext, 3) # 1)",
        "ciphertext = set_byte(ciphertext, length(ciphertext) - 1, get_byte(ciphertext, length(ciphertext) - 1) # 128)",
        "nonce = set_byte(nonce, 0, get_byte(nonce, 0) # 1)",
        "key_id = 'k2'",
        "version = 7",
        "field_name = 'refresh_token'",
    ];
    for (i, set) in cases.iter().enumerate() {
        let o = owner(Uuid::now_v7());
        let m = put(&store, &k, t, o, CANARY).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE qivault.secrets SET {set} WHERE id = $1")))
            .bind(m.id)
            .execute(&db.pool)
            .await
            .unwrap();
        let o = if set.starts_with("field_name") { SecretOwner { field: "refresh_token", ..o } } else { o };
        let r = get(&store, &k, t, o).await;
        let shown = format!("{r:?}");
        assert!(is_decrypt_error(r), "case {i} ({set}): {shown}");
        assert!(!shown.contains(CANARY) && shown.contains(&m.id.to_string()), "{shown}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.access_events").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 0, "a failed decryption hands out nothing and records no access");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_fails() {
    let k = ring(&[("k1", 1)], "k1");
    let (db, store, t) = setup(&k).await;
    let (a, b) = (owner(Uuid::now_v7()), owner(Uuid::now_v7()));
    let ma = put(&store, &k, t, a, CANARY).await;
    let mb = put(&store, &k, t, b, "other").await;
    sqlx::query(
        "UPDATE qivault.secrets d SET nonce = s.nonce, ciphertext = s.ciphertext, key_id = s.key_id
         FROM qivault.secrets s WHERE s.id = $1 AND d.id = $2",
    )
    .bind(ma.id)
    .bind(mb.id)
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(is_decrypt_error(get(&store, &k, t, b).await));
    assert_eq!(get(&store, &k, t, a).await.unwrap(), CANARY);
    // The same row id under another tenant is another binding too.
    let t2 = tenant(&db.pool, "vb").await;
    sqlx::query("UPDATE qivault.secrets SET tenant_id = $1 WHERE id = $2")
        .bind(t2.as_uuid())
        .bind(ma.id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(is_decrypt_error(get(&store, &k, t2, a).await));
}

#[tokio::test]
async fn tenants_cannot_see_each_others_secrets() {
    let k = ring(&[("k1", 1)], "k1");
    let (db, store, a) = setup(&k).await;
    let b = tenant(&db.pool, "vb").await;
    let o = owner(Uuid::now_v7());
    put(&store, &k, a, o, CANARY).await;
    get(&store, &k, a, o).await.unwrap();
    assert!(matches!(get(&store, &k, b, o).await, Err(VaultStoreError::NotFound(_))));
    let mut tx = store.tenant_tx(b).await.unwrap();
    for table in ["qivault.secrets", "qivault.access_events"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(tx.conn())
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} leaks across tenants");
    }
    let n = sqlx::query("UPDATE qivault.secrets SET version = 9").execute(tx.conn()).await.unwrap().rows_affected();
    assert_eq!(n, 0);
    drop(tx);
    for table in ["qivault.master_keys", "qivault.rotations"] {
        let mut tx = store.tenant_tx(a).await.unwrap();
        let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(tx.conn()).await;
        assert!(r.is_err(), "spine_app must not read {table}");
    }
    let mut tx = store.tenant_tx(a).await.unwrap();
    let r = sqlx::query("DELETE FROM qivault.access_events").execute(tx.conn()).await;
    assert!(r.is_err(), "access events are append-only for spine_app");
}

#[tokio::test]
async fn rotation_of_2000_secrets_while_4_tasks_read() {
    let k1 = ring(&[("k1", 1)], "k1");
    let (db, _, t1) = setup(&k1).await;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect_with(db.options.clone()).await.unwrap();
    let store = Store::new(pool);
    let t2 = tenant(&db.pool, "vb").await;
    let mut all = Vec::new();
    for (t, n) in [(t1, 1200), (t2, 800)] {
        let mut tx = store.tenant_tx(t).await.unwrap();
        for i in 0..n {
            let o = owner(Uuid::now_v7());
            let v = format!("value-{i}-{}", o.id);
            vault::put(&mut tx, &k1, o, &Secret::new(&v), None).await.unwrap();
            all.push((t, o.id, v));
        }
        tx.commit().await.unwrap();
    }
    let all = Arc::new(all);
    let k2 = Arc::new(ring(&[("k1", 1), ("k2", 2)], "k2"));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..4u64 {
        let (store, k2, all, stop, reads) = (store.clone(), k2.clone(), all.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut i = r * 7919;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let (t, id, v) = &all[((i >> 33) as usize) % all.len()];
                let got =
                    get(&store, &k2, *t, owner(*id)).await.unwrap_or_else(|e| panic!("read during rotation: {e}"));
                assert_eq!(&got, v);
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut calls = 0;
    let p =
        vault::rotate(&store, &k2, RotateOptions { batch_size: 100, max_batches: None }, |_| calls += 1).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(p.finished && p.total == 2000 && p.rotated == 2000, "{p:?}");
    assert!(calls >= 20, "progress after every batch ({calls})");
    let done = reads.load(Ordering::Relaxed);
    assert!(done > 0, "the readers ran during the rotation");
    let s = vault::status(&store).await.unwrap();
    let counts: Vec<(String, i64)> = s.keys.iter().map(|k| (k.key_id.clone(), k.secrets)).collect();
    assert_eq!(counts, vec![("k2".to_owned(), 2000), ("k1".to_owned(), 0)]);
    assert_eq!(s.rotation.unwrap().state, "finished");
    // Every secret opens with k2 alone and still holds its value.
    let only_k2 = ring(&[("k2", 2)], "k2");
    for (t, id, v) in all.iter() {
        assert_eq!(&get(&store, &only_k2, *t, owner(*id)).await.unwrap(), v);
    }
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM qivault.access_events").fetch_one(&db.pool).await.unwrap();
    assert_eq!(events as u64, done + 2000);
}

#[tokio::test]
async fn an_interrupted_rotation_resumes() {
    let k1 = ring(&[("k1", 1)], "k1");
    let (db, store, t) = setup(&k1).await;
    let mut tx = store.tenant_tx(t).await.unwrap();
    for i in 0..300 {
        vault::put(&mut tx, &k1, owner(Uuid::now_v7()), &Secret::new(format!("v{i}")), None).await.unwrap();
    }
    tx.commit().await.unwrap();
    let k2 = ring(&[("k1", 1), ("k2", 2)], "k2");
    let opts = RotateOptions { batch_size: 50, max_batches: Some(2) };
    let p = vault::rotate(&store, &k2, opts, |_| {}).await.unwrap();
    assert!(!p.finished && p.rotated == 100 && !p.resumed, "{p:?}");

    // Dropped mid-way (a crash of this task): the batch in flight rolls back.
    let (tx_batch, mut rx_batch) = tokio::sync::mpsc::unbounded_channel();
    let opts = RotateOptions { batch_size: 50, max_batches: None };
    tokio::select! {
        r = vault::rotate(&store, &k2, opts, move |p| { let _ = tx_batch.send(p.rotated); }) => panic!("finished early: {r:?}"),
        _ = rx_batch.recv() => {}
    }
    let (rotated, cursor): (i64, Option<Uuid>) =
        sqlx::query_as("SELECT secrets_rotated, last_processed_id FROM qivault.rotations WHERE state = 'running'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(rotated >= 150 && cursor.is_some(), "{rotated}");
    let under_k2: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.secrets WHERE key_id = 'k2'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(under_k2, rotated, "the recorded progress is exactly what committed");

    let p = vault::rotate(&store, &k2, opts, |_| {}).await.unwrap();
    assert!(p.finished && p.resumed && p.rotated == 300 && p.total == 300, "{p:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.secrets WHERE key_id <> 'k2'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.rotations").fetch_one(&db.pool).await.unwrap();
    assert_eq!(runs, 1, "one rotation, resumed twice");
    // Nothing left: a new rotation finishes at once.
    let p = vault::rotate(&store, &k2, opts, |_| {}).await.unwrap();
    assert!(p.finished && p.total == 0, "{p:?}");
}

#[tokio::test]
async fn keys_in_use_cannot_be_retired() {
    let k1 = ring(&[("k1", 1)], "k1");
    let (_db, store, t) = setup(&k1).await;
    let o = owner(Uuid::now_v7());
    put(&store, &k1, t, o, CANARY).await;
    let k2 = ring(&[("k1", 1), ("k2", 2)], "k2");
    vault::sync_keys(&store, &k2).await.unwrap();
    let e = vault::retire(&store, "k1").await.unwrap_err().to_string();
    assert!(e.contains("1 secret(s)") && e.contains("rotate"), "{e}");
    assert!(matches!(vault::retire(&store, "k2").await, Err(VaultStoreError::Refused(_))), "the active key");
    assert!(matches!(vault::retire(&store, "k9").await, Err(VaultStoreError::NotFound(_))));
    vault::rotate(&store, &k2, RotateOptions::default(), |_| {}).await.unwrap();
    vault::retire(&store, "k1").await.unwrap();
    let s = vault::status(&store).await.unwrap();
    assert_eq!(
        s.keys.iter().map(|k| (k.key_id.as_str(), k.state.as_str())).collect::<Vec<_>>(),
        vec![("k2", "active"), ("k1", "retired")]
    );
    // A process still configured with k1 active can neither register it nor write with it.
    assert!(matches!(vault::sync_keys(&store, &k1).await, Err(VaultStoreError::Refused(_))));
    let mut tx = store.tenant_tx(t).await.unwrap();
    let r = vault::put(&mut tx, &k1, owner(Uuid::now_v7()), &Secret::new("x"), None).await;
    assert!(r.unwrap_err().to_string().contains("retired"));
    // A different key under a known id is refused before it seals anything.
    let impostor = ring(&[("k2", 9)], "k2");
    let e = vault::sync_keys(&store, &impostor).await.unwrap_err().to_string();
    assert!(e.contains("not the key"), "{e}");
    assert_eq!(get(&store, &k2, t, o).await.unwrap(), CANARY);
}

/// Every text-like and bytea column of every table in every schema, pg_catalog included.
#[tokio::test]
async fn the_plaintext_and_the_key_appear_in_no_column_of_any_table() {
    let k = ring(&[("k1", 0x5a)], "k1");
    let (db, store, t) = setup(&k).await;
    let o = owner(Uuid::now_v7());
    put(&store, &k, t, o, CANARY).await;
    get(&store, &k, t, o).await.unwrap();
    let mut tx = store.tenant_tx(t).await.unwrap();
    vault::replace(&mut tx, &k, o, &Secret::new(format!("{CANARY}-2")), Duration::from_secs(60), None).await.unwrap();
    tx.commit().await.unwrap();
    let k2 = ring(&[("k1", 0x5a), ("k2", 0x6b)], "k2");
    vault::rotate(&store, &k2, RotateOptions::default(), |_| {}).await.unwrap();
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();

    let key_b64 = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo"; // base64 of 32 × 0x5a, unpadded
    let cols = sqlx::query(
        "SELECT format('%I.%I', n.nspname, c.relname) AS rel, quote_ident(a.attname) AS col, t.typname
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         JOIN pg_type t ON t.oid = a.atttypid
         WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%'
           AND t.typname IN ('text', 'varchar', 'bpchar', 'name', 'bytea', 'json', 'jsonb', '_text')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(cols.len() > 100, "the scan sees the catalog ({} columns)", cols.len());
    let mut scanned = 0;
    for c in &cols {
        let (rel, col, typ): (String, String, String) = (c.get("rel"), c.get("col"), c.get("typname"));
        let sql = if typ == "bytea" {
            format!(
                "SELECT count(*) FROM {rel} WHERE position($1::bytea IN {col}) > 0 OR position($2::bytea IN {col}) > 0"
            )
        } else {
            format!("SELECT count(*) FROM {rel} WHERE strpos({col}::text, $3) > 0 OR strpos({col}::text, $4) > 0")
        };
        let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(CANARY.as_bytes())
            .bind(&[0x5au8; 32][..])
            .bind(CANARY)
            .bind(key_b64)
            .fetch_one(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{rel}.{col}: {e}"));
        assert_eq!(hits, 0, "{rel}.{col} contains the plaintext or the key");
        scanned += 1;
    }
    assert_eq!(scanned, cols.len());
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qivault.secrets").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 2, "both versions exist and were scanned");
}
