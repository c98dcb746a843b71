//! The S3 blob store against a real S3 server on loopback (moto_server from PyPI, installed by
//! the test setup): round trip, dedupe, concurrent identical puts, the size limit, failed and
//! abandoned puts (single-PUT and multipart) leaving nothing, a multipart put, crafted hashes,
//! listing, temp sweeping and the bad-input corpus.

mod blob_support;

use std::time::{Duration, Instant};

use blob_support::moto::{BUCKET, Moto};
use blob_support::{Failing, Seeded, corpus_files, read_all, sha256_hex};
use futures_util::TryStreamExt as _;
use spine_core::secret::Secret;
use spine_store::blob::{BlobConfig, BlobError, BlobStore, S3Config};

const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async fn store() -> (Moto, BlobStore) {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let cfg = S3Config {
        bucket: BUCKET.into(),
        endpoint: Some(moto.endpoint()),
        region: "us-east-1".into(),
        access_key_id: Some("test".into()),
        secret_access_key: Some(Secret::new("test".into())),
        allow_http: true,
    };
    let s = BlobStore::from_config(&BlobConfig::S3(cfg)).await.unwrap();
    (moto, s)
}

/// Temp objects, blobs, and multipart uploads still open (aborts run in the background after a
/// failure, so this waits for them with a deadline).
async fn assert_leftovers(moto: &Moto, s: &BlobStore, blobs: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tmp = s.sweep_temp(Duration::ZERO, false).await.unwrap();
        let listed: Vec<_> = s.list().try_collect().await.unwrap();
        let port = moto.port;
        let open = tokio::task::spawn_blocking(move || Moto::open_uploads_on(port)).await.unwrap();
        if tmp.is_empty() && open == 0 {
            assert_eq!(listed.len(), blobs);
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {tmp:?}, {open} open multipart uploads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn round_trip_and_metadata() {
    let (moto, s) = store().await;
    let put = s.put(&b"hello"[..], None).await.unwrap();
    assert_eq!((put.sha256.as_str(), put.size, put.created), (HELLO, 5, true));
    assert_eq!(read_all(&mut s.open(HELLO).await.unwrap()).await, b"hello");
    assert!(s.exists(HELLO).await.unwrap());
    assert_eq!(s.size(HELLO).await.unwrap(), 5);
    let empty = s.put(&b""[..], None).await.unwrap();
    assert_eq!((empty.sha256.as_str(), empty.size), (EMPTY, 0));
    assert_eq!(read_all(&mut s.open(EMPTY).await.unwrap()).await, b"");
    let listed: Vec<_> = s.list().try_collect().await.unwrap();
    assert_eq!(listed.iter().map(|b| b.sha256.as_str()).collect::<Vec<_>>(), [HELLO, EMPTY]);
    assert!(s.delete(HELLO).await.unwrap());
    assert!(!s.delete(HELLO).await.unwrap());
    assert!(matches!(s.open(HELLO).await, Err(BlobError::NotFound(_))));
    assert_leftovers(&moto, &s, 1).await;
}

#[tokio::test]
async fn multipart_puts_dedupe_and_stream() {
    let (moto, s) = store().await;
    let len = 21 * 1024 * 1024 + 17; // three parts
    let a = s.put(Seeded::new(1, len), None).await.unwrap();
    assert_eq!((a.sha256.clone(), a.size, a.created), (Seeded::expected_sha256(1, len), len, true));
    let b = s.put(Seeded::new(1, len), None).await.unwrap();
    assert_eq!((b.sha256.as_str(), b.created), (a.sha256.as_str(), false));
    let mut back = s.open(&a.sha256).await.unwrap();
    let (h, n) = {
        use sha2::Digest;
        use tokio::io::AsyncReadExt;
        let mut hasher = sha2::Sha256::new();
        let (mut buf, mut n) = (vec![0u8; 1 << 20], 0u64);
        loop {
            let k = back.read(&mut buf).await.unwrap();
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            n += k as u64;
        }
        (hex::encode(hasher.finalize()), n)
    };
    assert_eq!((h, n), (a.sha256.clone(), len));
    let small = s.put(Seeded::new(5, 1000), None).await.unwrap();
    assert!(small.created);
    assert!(!s.put(Seeded::new(5, 1000), None).await.unwrap().created);
    assert_leftovers(&moto, &s, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_puts_all_succeed_and_leave_one_blob() {
    let (moto, s) = store().await;
    let len = 9 * 1024 * 1024; // multipart
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.put(Seeded::new(2, len), None).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().sha256, Seeded::expected_sha256(2, len));
    }
    assert_leftovers(&moto, &s, 1).await;
}

#[tokio::test]
async fn the_size_limit_stops_the_put_and_keeps_nothing() {
    let (moto, s) = store().await;
    let e = s.put(Seeded::new(3, 2000), Some(1999)).await.unwrap_err();
    assert!(matches!(e, BlobError::TooLarge { limit: 1999 }), "{e}");
    // Past the first part: the multipart upload is aborted.
    let limit = 17 * 1024 * 1024;
    let e = s.put(Seeded::new(3, u64::MAX), Some(limit)).await.unwrap_err();
    assert!(matches!(e, BlobError::TooLarge { limit: l } if l == limit), "{e}");
    assert_leftovers(&moto, &s, 0).await;
    assert_eq!(s.put(Seeded::new(3, 2000), Some(2000)).await.unwrap().size, 2000);
    assert_leftovers(&moto, &s, 1).await;
}

#[tokio::test]
async fn failed_and_dropped_puts_leave_nothing() {
    let (moto, s) = store().await;
    for ok_bytes in [1000, 20 << 20] {
        let e = s.put(Failing::error_after(ok_bytes), None).await.unwrap_err();
        assert!(matches!(e, BlobError::Input(_)), "{e}");
        let s2 = s.clone();
        let put = tokio::spawn(async move { s2.put(Failing::stall_after(ok_bytes), None).await });
        if ok_bytes > 8 << 20 {
            // Wait until the multipart upload exists, then drop the future.
            let (port, deadline) = (moto.port, Instant::now() + Duration::from_secs(20));
            while tokio::task::spawn_blocking(move || Moto::open_uploads_on(port)).await.unwrap() == 0 {
                assert!(Instant::now() < deadline, "the multipart upload never started");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        put.abort();
        assert!(put.await.unwrap_err().is_cancelled());
    }
    assert_leftovers(&moto, &s, 0).await;
}

#[tokio::test]
async fn crafted_hashes_are_refused() {
    let (_moto, s) = store().await;
    let upper = HELLO.to_uppercase();
    for bad in ["../../etc/passwd", "", &upper, &HELLO[..63], "sha256/../tmp/x"] {
        assert!(matches!(s.open(bad).await, Err(BlobError::InvalidHash(_))), "open({bad:?})");
        assert!(matches!(s.stat(bad).await, Err(BlobError::InvalidHash(_))), "stat({bad:?})");
        assert!(matches!(s.delete(bad).await, Err(BlobError::InvalidHash(_))), "delete({bad:?})");
    }
}

#[tokio::test]
async fn listing_pages_and_every_bad_input_file_round_trips() {
    let (moto, s) = store().await;
    let files = corpus_files();
    let mut hashes = std::collections::BTreeSet::new();
    for f in &files {
        let want = std::fs::read(f).unwrap();
        let p = s.put(tokio::fs::File::open(f).await.unwrap(), Some(64 << 20)).await.unwrap();
        assert_eq!(p.sha256, sha256_hex(&want), "{}", f.display());
        assert_eq!(read_all(&mut s.open(&p.sha256).await.unwrap()).await, want, "{}", f.display());
        hashes.insert(p.sha256);
    }
    let hashes: Vec<_> = hashes.into_iter().collect();
    let first = s.list_page(None, 10).await.unwrap();
    assert_eq!(first.iter().map(|b| &b.sha256).collect::<Vec<_>>(), hashes[..10].iter().collect::<Vec<_>>());
    let second = s.list_page(Some(&first[9].sha256), 10).await.unwrap();
    assert_eq!(second[0].sha256, hashes[10]);
    assert_leftovers(&moto, &s, hashes.len()).await;
}
