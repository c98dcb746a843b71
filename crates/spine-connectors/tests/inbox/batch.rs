//! Hundreds of files dropped at once are taken in batches that share their durability (decision
//! 0027): each is registered exactly once, duplicates are duplicates, and a file refused in a
//! batch goes to failed/ alone.

use std::fs;

use crate::helpers::{Env, files_under, wait_for};

const FILES: usize = 300;
/// Files whose bytes another file also has (`dup-*` repeat `f*`'s contents).
const DUPLICATES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_files_dropped_at_once_are_each_registered_once() {
    let env = Env::new(Some(64 * 1024)).await;
    let folders = env.folder(|f| f.settle_ms = 200).await;
    let root = folders[0].path.clone();
    let w = env.start(folders);
    w.idle_after_rescans(1).await;

    // Made beside the folder, then renamed in together, as a sync client would.
    let staging = env.tmp.path().join("staging");
    fs::create_dir_all(&staging).unwrap();
    for i in 0..FILES {
        fs::write(staging.join(format!("f{i:04}.txt")), format!("file {i}\n").repeat(1 + i % 50)).unwrap();
    }
    for i in 0..DUPLICATES {
        fs::write(staging.join(format!("dup-{i:04}.txt")), format!("file {i}\n").repeat(1 + i % 50)).unwrap();
    }
    fs::write(staging.join("too-large.bin"), vec![b'x'; 64 * 1024 + 1]).unwrap();
    for e in fs::read_dir(&staging).unwrap() {
        let e = e.unwrap();
        fs::rename(e.path(), root.join(e.file_name())).unwrap();
    }

    let total = FILES + DUPLICATES + 1;
    wait_for("every file moved", || async {
        let files = files_under(&root);
        files.len() >= total && files.iter().all(|p| p.starts_with("processed") || p.starts_with("failed"))
    })
    .await;
    w.idle_after_rescans(1).await;

    let registered = (FILES + DUPLICATES) as i64;
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, registered);
    assert_eq!(
        env.count("SELECT count(DISTINCT details ->> 'relative_path') FROM qiaccess.capture_events").await,
        registered
    );
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events WHERE is_duplicate").await, DUPLICATES as i64);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.file_versions").await, FILES as i64);
    assert_eq!(env.count("SELECT count(*) FROM qiserver.jobs WHERE kind = 'spine.file.process'").await, FILES as i64);
    assert_eq!(
        env.count("SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered'").await,
        FILES as i64
    );
    assert_eq!(
        env.count("SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'duplicate'").await,
        DUPLICATES as i64
    );
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'failed'").await, 1);
    assert_eq!(files_under(&root.join("processed")).len(), FILES + DUPLICATES);
    assert!(root.join("failed/too-large.bin").exists());
    assert!(root.join("failed/too-large.bin.reason.txt").exists());
    let s = w.snapshot();
    assert_eq!((s.registered, s.duplicates, s.failed), (FILES as u64, DUPLICATES as u64, 1));
    w.stop().await;
    env.assert_consistent().await;
}
