//! The local blob store on a real file system: round trip, dedupe, concurrent identical puts, the
//! size limit, failed and abandoned puts leaving nothing, a 1 GiB streamed put, crafted hashes,
//! stale temp sweeping, listing, and every file of the bad-input corpus byte for byte.

mod blob_support;

use std::time::{Duration, SystemTime};

use blob_support::{Failing, Seeded, corpus_files, read_all, sha256_hex};
use futures_util::TryStreamExt as _;
use spine_store::blob::{BlobConfig, BlobError, BlobStore};

const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = BlobStore::from_config(&BlobConfig::Local { root: dir.path().join("blobs") }).await.unwrap();
    (dir, s)
}

/// Names in `<root>/tmp` and every blob listed.
async fn leftovers(dir: &tempfile::TempDir, s: &BlobStore) -> (Vec<String>, usize) {
    let tmp = std::fs::read_dir(dir.path().join("blobs/tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let blobs: Vec<_> = s.list().try_collect().await.unwrap();
    (tmp, blobs.len())
}

#[tokio::test]
async fn round_trip_layout_and_metadata() {
    let (dir, s) = store().await;
    let put = s.put(&b"hello"[..], None).await.unwrap();
    assert_eq!((put.sha256.as_str(), put.size, put.created), (HELLO, 5, true));
    let path = dir.path().join("blobs/sha256/2c/f2").join(HELLO);
    assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    assert_eq!(read_all(&mut s.open(HELLO).await.unwrap()).await, b"hello");
    assert!(s.exists(HELLO).await.unwrap());
    assert_eq!(s.size(HELLO).await.unwrap(), 5);

    let empty = s.put(&b""[..], None).await.unwrap();
    assert_eq!((empty.sha256.as_str(), empty.size), (EMPTY, 0));
    assert_eq!(read_all(&mut s.open(EMPTY).await.unwrap()).await, b"");

    let listed: Vec<_> = s.list().try_collect().await.unwrap();
    assert_eq!(listed.iter().map(|b| b.sha256.as_str()).collect::<Vec<_>>(), [HELLO, EMPTY]);
    assert_eq!(listed[0].size, 5);
    assert!(listed[0].modified <= chrono::Utc::now());

    assert!(s.delete(HELLO).await.unwrap());
    assert!(!s.delete(HELLO).await.unwrap());
    assert!(!s.exists(HELLO).await.unwrap());
    assert!(matches!(s.open(HELLO).await, Err(BlobError::NotFound(_))));
    assert!(matches!(s.size(HELLO).await, Err(BlobError::NotFound(_))));
    assert_eq!(leftovers(&dir, &s).await, (vec![], 1));
}

#[tokio::test]
async fn same_bytes_are_stored_once() {
    let (dir, s) = store().await;
    let a = s.put(Seeded::new(1, 3 << 20), None).await.unwrap();
    let b = s.put(Seeded::new(1, 3 << 20), None).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!((a.sha256.clone(), a.size), (b.sha256, b.size));
    assert_eq!(a.sha256, Seeded::expected_sha256(1, 3 << 20));
    assert_eq!(leftovers(&dir, &s).await, (vec![], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_puts_all_succeed_and_leave_one_blob() {
    let (dir, s) = store().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.put(Seeded::new(2, 2 << 20), None).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let p = t.await.unwrap().unwrap();
        assert_eq!(p.sha256, Seeded::expected_sha256(2, 2 << 20));
        created += usize::from(p.created);
    }
    assert_eq!(created, 1, "exactly one put publishes the blob");
    assert_eq!(leftovers(&dir, &s).await, (vec![], 1));
}

#[tokio::test]
async fn the_size_limit_stops_the_put_and_keeps_nothing() {
    let (dir, s) = store().await;
    let limit = 5 * 1024 * 1024 + 3;
    let e = s.put(Seeded::new(3, limit + 1), Some(limit)).await.unwrap_err();
    assert!(matches!(e, BlobError::TooLarge { limit: l } if l == limit), "{e}");
    assert!(e.to_string().contains("limit of 5242883 bytes"), "{e}");
    assert_eq!(leftovers(&dir, &s).await, (vec![], 0));
    // An endless reader is not read to its end.
    let e = s.put(Seeded::new(3, u64::MAX), Some(1024)).await.unwrap_err();
    assert!(matches!(e, BlobError::TooLarge { .. }));
    // Exactly the limit is fine.
    let p = s.put(Seeded::new(3, limit), Some(limit)).await.unwrap();
    assert_eq!(p.size, limit);
    assert_eq!(leftovers(&dir, &s).await, (vec![], 1));
}

#[tokio::test]
async fn a_reader_that_fails_midway_leaves_nothing() {
    let (dir, s) = store().await;
    // Past the part a put gathers in memory, and within it.
    for at in [3 << 20, 100 << 10] {
        let e = s.put(Failing::error_after(at), None).await.unwrap_err();
        assert!(matches!(e, BlobError::Input(_)), "{e}");
        assert!(e.to_string().contains("the sender went away"), "{e}");
        assert_eq!(leftovers(&dir, &s).await, (vec![], 0));
    }
}

#[tokio::test]
async fn a_dropped_put_leaves_nothing() {
    let (dir, s) = store().await;
    let s2 = s.clone();
    let put = tokio::spawn(async move { s2.put(Failing::stall_after(2 << 20), None).await });
    // Wait until the put has its temp file, then drop the future.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while leftovers(&dir, &s).await.0.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the put never started writing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    put.abort();
    assert!(put.await.unwrap_err().is_cancelled());
    assert_eq!(leftovers(&dir, &s).await, (vec![], 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streams_through_in_constant_memory() {
    let (dir, s) = store().await;
    let len = 1u64 << 30;
    let expected = tokio::task::spawn_blocking(move || Seeded::expected_sha256(42, len));
    let p = s.put(Seeded::new(42, len), None).await.unwrap();
    assert_eq!(p.size, len);
    assert_eq!(p.sha256, expected.await.unwrap());
    assert_eq!(s.size(&p.sha256).await.unwrap(), len);
    assert_eq!(leftovers(&dir, &s).await, (vec![], 1));
}

#[tokio::test]
async fn crafted_hashes_are_refused() {
    let (_dir, s) = store().await;
    s.put(&b"hello"[..], None).await.unwrap();
    let upper = HELLO.to_uppercase();
    let long = format!("{HELLO}0");
    for bad in ["../../etc/passwd", "", &upper, &HELLO[..63], &long, "2c/f2/../../../../etc/passwd"] {
        assert!(matches!(s.open(bad).await, Err(BlobError::InvalidHash(_))), "open({bad:?})");
        assert!(matches!(s.stat(bad).await, Err(BlobError::InvalidHash(_))), "stat({bad:?})");
        assert!(matches!(s.delete(bad).await, Err(BlobError::InvalidHash(_))), "delete({bad:?})");
        assert!(matches!(s.list_page(Some(bad), 10).await, Err(BlobError::InvalidHash(_))));
    }
    let e = s.open("../../etc/passwd").await.err().unwrap();
    assert!(e.to_string().contains("64 lowercase hexadecimal"), "{e}");
    assert!(s.exists(HELLO).await.unwrap(), "nothing was deleted");
}

#[tokio::test]
async fn listing_pages_in_hash_order() {
    let (_dir, s) = store().await;
    let mut hashes = Vec::new();
    for i in 0..25u64 {
        hashes.push(s.put(Seeded::new(100 + i, 1000 + i), None).await.unwrap().sha256);
    }
    hashes.sort();
    let first = s.list_page(None, 10).await.unwrap();
    assert_eq!(first.iter().map(|b| &b.sha256).collect::<Vec<_>>(), hashes[..10].iter().collect::<Vec<_>>());
    let second = s.list_page(Some(&first[9].sha256), 10).await.unwrap();
    assert_eq!(second[0].sha256, hashes[10]);
    let all: Vec<_> = s.list().try_collect().await.unwrap();
    assert_eq!(all.into_iter().map(|b| b.sha256).collect::<Vec<_>>(), hashes);
}

#[tokio::test]
async fn stale_temp_files_are_swept_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let cfg = BlobConfig::Local { root: root.clone() };
    BlobStore::from_config(&cfg).await.unwrap();
    let old = root.join("tmp/abandoned.part");
    let fresh = root.join("tmp/in-progress.part");
    std::fs::write(&old, b"half a file").unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::open(&old).unwrap().set_modified(two_hours_ago).unwrap();
    let s = BlobStore::from_config(&cfg).await.unwrap();
    assert!(!old.exists() && fresh.exists());
    let swept = s.sweep_temp(Duration::ZERO, false).await.unwrap();
    assert_eq!(swept.len(), 1, "listing without removing");
    assert!(fresh.exists());
}

#[tokio::test]
async fn every_bad_input_file_is_stored_and_read_back_byte_identical() {
    let (dir, s) = store().await;
    let files = corpus_files();
    for f in &files {
        let want = std::fs::read(f).unwrap();
        let p = s.put(tokio::fs::File::open(f).await.unwrap(), Some(64 << 20)).await.unwrap();
        assert_eq!((p.sha256.as_str(), p.size), (sha256_hex(&want).as_str(), want.len() as u64), "{}", f.display());
        assert_eq!(read_all(&mut s.open(&p.sha256).await.unwrap()).await, want, "{}", f.display());
    }
    let distinct: std::collections::BTreeSet<_> =
        files.iter().map(|f| sha256_hex(&std::fs::read(f).unwrap())).collect();
    assert_eq!(leftovers(&dir, &s).await, (vec![], distinct.len()));
}
