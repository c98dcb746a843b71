//! Read-only folders: files stay, the state remembers them across rescans and restarts, and a
//! changed file is registered again.

use std::fs;

use crate::helpers::{Env, files_under, sha256_hex, wait_count};

#[tokio::test]
async fn read_only_folder_registers_once_and_again_only_when_changed() {
    let env = Env::new(None).await;
    let folders = env
        .folder(|f| {
            f.read_only = true;
            f.rescan_secs = 1;
        })
        .await;
    let root = folders[0].path.clone();
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("r.csv"), b"a,b\n1,2\n").unwrap();
    fs::write(root.join("sub/s.txt"), b"nested").unwrap();

    let w = env.start(folders.clone());
    wait_count(&env, "SELECT count(*) FROM qiaccess.capture_events", 2).await;
    w.idle_after_rescans(3).await;
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 2, "rescans do not register again");
    assert_eq!(files_under(&root), [std::path::PathBuf::from("r.csv"), "sub/s.txt".into()], "nothing moved or created");
    let stayed = "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered' AND moved_to IS NULL";
    assert_eq!(env.count(stayed).await, 2);
    w.stop().await;

    // A new watcher (a restart) remembers both files.
    let w = env.start(folders.clone());
    w.idle_after_rescans(2).await;
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 2, "a restart does not register again");

    // Changed: registered again, as version 2 of the same file.
    let changed = b"a,b\n1,2\n3,4\n";
    fs::write(root.join("r.csv"), changed).unwrap();
    wait_count(&env, "SELECT count(*) FROM qiaccess.capture_events", 3).await;
    w.idle_after_rescans(4).await;
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 3);
    let v2 = format!(
        "SELECT count(*) FROM qinexus.file_versions v JOIN qinexus.files f ON f.id = v.file_id \
         WHERE f.original_name = 'r.csv' AND v.version = 2 AND v.content_sha256 = '{}'",
        sha256_hex(changed)
    );
    assert_eq!(env.count(&v2).await, 1);
    assert_eq!(fs::read(root.join("r.csv")).unwrap(), changed, "still in place");
    let s = w.snapshot();
    assert_eq!((s.registered, s.duplicates, s.failed), (1, 0, 0));
    w.stop().await;

    // And once more after a restart: nothing new.
    let w = env.start(folders);
    w.idle_after_rescans(2).await;
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 3);
    w.stop().await;
    env.assert_consistent().await;
}
