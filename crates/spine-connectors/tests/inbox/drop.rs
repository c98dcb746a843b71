//! Dropping files: renamed-in and slowly written files, ignored names, duplicates and versions.

use std::fs;
use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::helpers::{Env, files_under, sha256_hex, wait_count, wait_for};

#[tokio::test]
async fn renamed_in_csv_is_registered_at_once_and_ignored_names_stay() {
    let env = Env::new(None).await;
    // A settle interval far longer than the test waits: only the rename makes the file go.
    let folders = env
        .folder(|f| {
            f.settle_ms = 20_000;
            f.rescan_secs = 1;
        })
        .await;
    let root = folders[0].path.clone();
    let w = env.start(folders);
    w.idle_after_rescans(1).await;

    let ignored = ["notes.tmp", ".hidden", "~$report.docx", "video.crdownload", "half.csv.part", "Upper.TMP"];
    for name in ignored {
        fs::write(root.join(name), format!("ignored {name}")).unwrap();
    }
    let csv = b"name,email\nAda Lovelace,ada@example.org\n";
    fs::write(root.join("x.csv.part"), csv).unwrap();
    let dropped = Instant::now();
    fs::rename(root.join("x.csv.part"), root.join("x.csv")).unwrap();

    wait_for("x.csv in processed/", || async { root.join("processed/x.csv").exists() }).await;
    let took = dropped.elapsed();
    assert!(took < Duration::from_secs(20), "a renamed-in file is taken without settling ({took:?})");
    assert!(!root.join("x.csv").exists());
    assert_eq!(fs::read(root.join("processed/x.csv")).unwrap(), csv);

    let route = root.to_string_lossy().into_owned();
    let captures = env
        .count(&format!(
            "SELECT count(*) FROM qiaccess.capture_events WHERE ingress_kind = 'watch_folder' AND route = '{route}' \
             AND captured_by = 'watcher:test-host' AND NOT is_duplicate AND details ->> 'relative_path' = 'x.csv'"
        ))
        .await;
    assert_eq!(captures, 1);
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.files WHERE original_name = 'x.csv'").await, 1);
    let source = format!(
        "SELECT count(*) FROM qinexus.sources WHERE source_key = 'inbox:{route}' AND source_kind = 'watch_folder'"
    );
    assert_eq!(env.count(&source).await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qiserver.jobs WHERE kind = 'spine.file.process'").await, 1);
    let entry = "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered' AND relative_path = 'x.csv' \
                 AND moved_to = 'processed/x.csv' AND file_id IS NOT NULL AND capture_event_id IS NOT NULL";
    assert_eq!(env.count(entry).await, 1);
    let sha = sha256_hex(csv);
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM qinexus.file_versions WHERE content_sha256 = '{sha}'")).await,
        1
    );

    // Two more full rescans: the ignored files are still there, untouched and unregistered.
    w.idle_after_rescans(3).await;
    for name in ignored {
        assert_eq!(fs::read_to_string(root.join(name)).unwrap(), format!("ignored {name}"), "{name}");
    }
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 1);
    let s = w.snapshot();
    assert_eq!((s.registered, s.duplicates, s.failed), (1, 0, 0));
    assert!(s.ignored >= ignored.len() as u64, "{s:?}");
    w.stop().await;
    env.assert_consistent().await;
}

#[tokio::test]
async fn slowly_written_file_is_registered_once_with_its_final_bytes() {
    let env = Env::new(None).await;
    let folders = env.folder(|f| f.settle_ms = 1000).await;
    let root = folders[0].path.clone();
    let w = env.start(folders);
    w.idle_after_rescans(1).await;

    // 30 appends 100 ms apart: 3 s of writing, three times the settle interval.
    let mut content = Vec::new();
    let mut f = fs::File::create(root.join("slow.csv")).unwrap();
    for i in 0..30 {
        let chunk = format!("{i},row number {i},{}\n", "x".repeat(i * 7));
        f.write_all(chunk.as_bytes()).unwrap();
        content.extend_from_slice(chunk.as_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(f);
    wait_for("slow.csv in processed/", || async { root.join("processed/slow.csv").exists() }).await;
    w.idle_after_rescans(1).await;

    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.file_versions").await, 1);
    let (sha, size): (String, i64) = sqlx::query_as("SELECT content_sha256, size_bytes FROM qinexus.file_versions")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(sha, sha256_hex(&content));
    assert_eq!(size as usize, content.len());
    assert_eq!(fs::read(root.join("processed/slow.csv")).unwrap(), content);
    w.stop().await;
    env.assert_consistent().await;
}

#[tokio::test]
async fn same_bytes_are_a_duplicate_and_same_name_new_bytes_a_new_version() {
    let env = Env::new(None).await;
    let folders = env.folder(|_| {}).await;
    let root = folders[0].path.clone();
    let w = env.start(folders);
    w.idle_after_rescans(1).await;

    let first = b"id,name\n1,Ada\n";
    fs::write(root.join("a.csv"), first).unwrap();
    wait_count(&env, "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered'", 1).await;

    // The same bytes under another name: a duplicate capture, no new file.
    fs::write(root.join("b.csv"), first).unwrap();
    wait_count(&env, "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'duplicate'", 1).await;
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events WHERE is_duplicate").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.files").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.file_versions").await, 1);
    let dup_points_at_a = "SELECT count(*) FROM qiaccess.capture_events c JOIN qinexus.files f ON f.id = c.file_id \
                           WHERE c.is_duplicate AND f.original_name = 'a.csv' AND c.details ->> 'relative_path' = 'b.csv'";
    assert_eq!(env.count(dup_points_at_a).await, 1);

    // The first name again with new bytes: version 2 of the same file.
    let second = b"id,name\n1,Ada\n2,Grace\n";
    fs::write(root.join("a.csv"), second).unwrap();
    wait_count(&env, "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered'", 2).await;
    wait_for("everything moved", || async { files_under(&root).iter().all(|p| p.starts_with("processed")) }).await;
    assert_eq!(env.count("SELECT count(*) FROM qinexus.files").await, 1);
    assert_eq!(
        env.count("SELECT max(current_version)::bigint FROM qinexus.files WHERE original_name = 'a.csv'").await,
        2
    );
    let v2 = format!(
        "SELECT count(*) FROM qinexus.file_versions WHERE version = 2 AND content_sha256 = '{}'",
        sha256_hex(second)
    );
    assert_eq!(env.count(&v2).await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, 3);

    // processed/ keeps all three, the clash under a suffix.
    assert_eq!(fs::read(root.join("processed/a.csv")).unwrap(), first);
    assert_eq!(fs::read(root.join("processed/b.csv")).unwrap(), first);
    assert_eq!(fs::read(root.join("processed/a-1.csv")).unwrap(), second);
    let moved = "SELECT count(*) FROM qiaccess.inbox_entries WHERE moved_to = 'processed/a-1.csv' AND file_version = 2";
    assert_eq!(env.count(moved).await, 1);
    let s = w.snapshot();
    assert_eq!((s.registered, s.duplicates, s.failed), (2, 1, 0));
    w.stop().await;
    env.assert_consistent().await;
}
