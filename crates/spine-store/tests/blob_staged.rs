//! Staged puts of the local blob store (decision 0027): nothing is visible before the group
//! flush, the flush publishes every item with the right bytes and one blob per content, a
//! dropped staged item leaves nothing, and a large item is durable at once.

mod blob_support;

use blob_support::{Seeded, read_all, sha256_hex};
use futures_util::TryStreamExt as _;
use spine_store::blob::{BlobConfig, BlobError, BlobStore, GROUP_FLUSH_MAX, StagedBlob, flush_staged};

async fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = BlobStore::from_config(&BlobConfig::Local { root: dir.path().join("blobs") }).await.unwrap();
    (dir, s)
}

fn temp_names(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count()
}

async fn blob_count(s: &BlobStore) -> usize {
    s.list().try_collect::<Vec<_>>().await.unwrap().len()
}

#[tokio::test]
async fn a_group_flush_publishes_each_item_once_with_its_bytes() {
    let (dir, s) = store().await;
    let contents: Vec<Vec<u8>> = (0..50).map(|i| format!("item {i}\n").repeat(i + 1).into_bytes()).collect();
    let mut staged = Vec::new();
    for c in &contents {
        staged.push(s.stage(&c[..], None).await.unwrap());
    }
    // The same bytes twice in one group.
    staged.push(s.stage(&contents[3][..], None).await.unwrap());
    assert!(staged.iter().all(|b| matches!(b, StagedBlob::Unsynced(_))));
    assert_eq!(blob_count(&s).await, 0, "nothing is a blob before the flush");
    assert_eq!(temp_names(&dir), 51);

    let done: Vec<_> = flush_staged(staged).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(done.len(), 51);
    for (p, c) in done.iter().zip(&contents) {
        assert_eq!((p.sha256.as_str(), p.size, p.created), (sha256_hex(c).as_str(), c.len() as u64, true));
        assert_eq!(&read_all(&mut s.open(&p.sha256).await.unwrap()).await, c);
    }
    assert!(!done[50].created, "the second item with the same bytes reuses the blob");
    assert_eq!(done[50].sha256, done[3].sha256);
    assert_eq!(blob_count(&s).await, 50);
    assert_eq!(temp_names(&dir), 0);

    // Bytes already stored: staged again, not created again.
    let again = flush_staged(vec![s.stage(&contents[7][..], None).await.unwrap()]).await;
    assert!(!again[0].as_ref().unwrap().created);
}

#[tokio::test]
async fn a_dropped_staged_item_leaves_nothing_and_the_limit_still_holds() {
    let (dir, s) = store().await;
    let staged = s.stage(&b"never flushed"[..], None).await.unwrap();
    assert_eq!(temp_names(&dir), 1);
    drop(staged);
    assert_eq!((temp_names(&dir), blob_count(&s).await), (0, 0));

    let err = s.stage(&[7u8; 100][..], Some(10)).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { limit: 10 }));
    assert_eq!((temp_names(&dir), blob_count(&s).await), (0, 0));
}

#[tokio::test]
async fn a_large_item_is_durable_when_staged() {
    let (dir, s) = store().await;
    let size = GROUP_FLUSH_MAX + 1;
    let staged = s.stage(Seeded::new(9, size), None).await.unwrap();
    let StagedBlob::Durable(put) = &staged else { panic!("a large item publishes itself: {staged:?}") };
    assert!(put.created);
    assert_eq!(put.sha256, Seeded::expected_sha256(9, size));
    assert!(s.exists(&put.sha256).await.unwrap());
    assert_eq!(temp_names(&dir), 0);
    let done = flush_staged(vec![staged]).await;
    assert!(done[0].as_ref().unwrap().created, "a durable item passes through the flush");
}
