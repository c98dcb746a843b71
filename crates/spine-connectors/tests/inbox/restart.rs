//! Restarts and crashes: nothing registered twice, nothing missed.

use std::fs;

use spine_connectors::inbox::CrashPoint;
use uuid::Uuid;

use crate::helpers::{Env, files_under, sha256_hex, wait_count, wait_for};

const CAPTURES: &str = "SELECT count(*) FROM qiaccess.capture_events";

#[tokio::test]
async fn files_dropped_while_stopped_are_registered_once_after_a_restart() {
    let env = Env::new(None).await;
    let folders = env.folder(|f| f.rescan_secs = 1).await;
    let root = folders[0].path.clone();

    let w = env.start(folders.clone());
    w.idle_after_rescans(1).await;
    fs::write(root.join("before.txt"), b"before the stop").unwrap();
    wait_count(&env, CAPTURES, 1).await;
    w.stop().await;

    // Dropped while no watcher runs (some in a new subfolder), and one left half-dropped.
    fs::create_dir_all(root.join("later")).unwrap();
    for i in 0..20 {
        let dir = if i % 2 == 0 { root.clone() } else { root.join("later") };
        fs::write(dir.join(format!("while-stopped-{i}.txt")), format!("dropped while stopped {i}")).unwrap();
    }
    fs::write(root.join("partial.bin.part"), b"not yet").unwrap();

    let w = env.start(folders.clone());
    wait_count(&env, CAPTURES, 21).await;
    w.idle_after_rescans(3).await;
    assert_eq!(env.count(CAPTURES).await, 21);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.files").await, 21);
    let left: Vec<_> = files_under(&root).into_iter().filter(|p| !p.starts_with("processed")).collect();
    assert_eq!(left, [std::path::PathBuf::from("partial.bin.part")]);
    assert!(root.join("processed/later/while-stopped-1.txt").exists());
    w.stop().await;

    // A third start finds nothing to do.
    let w = env.start(folders);
    w.idle_after_rescans(2).await;
    assert_eq!(env.count(CAPTURES).await, 21);
    w.stop().await;
    env.assert_consistent().await;
}

#[tokio::test]
async fn crash_after_registration_before_the_move_is_finished_without_a_second_capture() {
    let env = Env::new(None).await;
    let folders = env.folder(|_| {}).await;
    let root = folders[0].path.clone();
    fs::write(root.join("c.csv"), b"id\n1\n").unwrap();

    // The registration commits, then the process "dies": no outcome recorded, no move.
    let crashed = env.watcher(folders.clone());
    crashed.take_until(0, "c.csv".as_ref(), CrashPoint::AfterRegister).await.unwrap();
    drop(crashed);
    assert_eq!(env.count(CAPTURES).await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registering'").await, 1);
    assert!(root.join("c.csv").exists());
    let (entry, capture): (Uuid, Uuid) = sqlx::query_as(
        "SELECT e.id, c.id FROM qiaccess.inbox_entries e \
         JOIN qiaccess.capture_events c ON c.details ->> 'inbox_entry_id' = e.id::text",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();

    let w = env.start(folders);
    wait_for("c.csv in processed/", || async { root.join("processed/c.csv").exists() }).await;
    wait_count(&env, "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered'", 1).await;
    w.idle_after_rescans(1).await;
    assert_eq!(env.count(CAPTURES).await, 1, "no second capture");
    assert_eq!(env.count("SELECT count(*) FROM qinexus.file_versions").await, 1);
    let finished = format!(
        "SELECT count(*) FROM qiaccess.inbox_entries WHERE id = '{entry}' AND capture_event_id = '{capture}' \
         AND moved_to = 'processed/c.csv' AND reason LIKE '%interruption%'"
    );
    assert_eq!(env.count(&finished).await, 1);
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.inbox_entries").await, 1);
    w.stop().await;
    env.assert_consistent().await;
}

#[tokio::test]
async fn crash_after_the_intent_registers_once_under_the_same_entry() {
    let env = Env::new(None).await;
    let folders = env.folder(|_| {}).await;
    let root = folders[0].path.clone();
    fs::write(root.join("d.csv"), b"id\n2\n").unwrap();

    let crashed = env.watcher(folders.clone());
    crashed.take_until(0, "d.csv".as_ref(), CrashPoint::AfterIntent).await.unwrap();
    drop(crashed);
    assert_eq!(env.count(CAPTURES).await, 0);
    let entry: Uuid = sqlx::query_scalar("SELECT id FROM qiaccess.inbox_entries WHERE status = 'registering'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();

    let w = env.start(folders);
    wait_for("d.csv in processed/", || async { root.join("processed/d.csv").exists() }).await;
    wait_count(&env, "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered'", 1).await;
    assert_eq!(env.count(CAPTURES).await, 1);
    let same = format!("SELECT count(*) FROM qiaccess.capture_events WHERE details ->> 'inbox_entry_id' = '{entry}'");
    assert_eq!(env.count(&same).await, 1, "registered under the entry recorded before the crash");
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.inbox_entries").await, 1);
    w.stop().await;
    env.assert_consistent().await;
}

#[tokio::test]
async fn crash_then_changed_file_keeps_the_first_registration_and_registers_the_new_bytes() {
    let env = Env::new(None).await;
    let folders = env.folder(|_| {}).await;
    let root = folders[0].path.clone();
    fs::write(root.join("e.csv"), b"id\n3\n").unwrap();
    let crashed = env.watcher(folders.clone());
    crashed.take_until(0, "e.csv".as_ref(), CrashPoint::AfterRegister).await.unwrap();
    drop(crashed);

    // Replaced before the restart: the old registration stands, the new bytes are version 2.
    let new = b"id\n3\n4\n";
    fs::write(root.join("e.csv"), new).unwrap();
    let w = env.start(folders);
    wait_for("e.csv in processed/", || async { root.join("processed/e.csv").exists() }).await;
    wait_count(&env, CAPTURES, 2).await;
    wait_count(&env, "SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered'", 2).await;
    w.idle_after_rescans(1).await;
    assert_eq!(fs::read(root.join("processed/e.csv")).unwrap(), new);
    let v2 = format!(
        "SELECT count(*) FROM qinexus.file_versions WHERE version = 2 AND content_sha256 = '{}'",
        sha256_hex(new)
    );
    assert_eq!(env.count(&v2).await, 1);
    let old = "SELECT count(*) FROM qiaccess.inbox_entries WHERE moved_to IS NULL AND reason LIKE '%changed before it was moved%'";
    assert_eq!(env.count(old).await, 1);
    w.stop().await;
    env.assert_consistent().await;
}

#[tokio::test]
async fn entries_of_files_removed_while_stopped_are_resolved_at_start() {
    let env = Env::new(None).await;
    let folders = env.folder(|_| {}).await;
    let root = folders[0].path.clone();
    fs::write(root.join("registered.csv"), b"id\n5\n").unwrap();
    fs::write(root.join("intended.csv"), b"id\n6\n").unwrap();
    fs::write(root.join("replaced.csv"), b"id\n7\n").unwrap();
    let crashed = env.watcher(folders.clone());
    crashed.take_until(0, "registered.csv".as_ref(), CrashPoint::AfterRegister).await.unwrap();
    crashed.take_until(0, "intended.csv".as_ref(), CrashPoint::AfterIntent).await.unwrap();
    crashed.take_until(0, "replaced.csv".as_ref(), CrashPoint::AfterRegister).await.unwrap();
    drop(crashed);
    // Someone clears the folder before the next start, and puts a link where a file was.
    fs::remove_file(root.join("registered.csv")).unwrap();
    fs::remove_file(root.join("intended.csv")).unwrap();
    fs::remove_file(root.join("replaced.csv")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("replaced.csv")).unwrap();

    let w = env.start(folders);
    wait_count(&env, "SELECT count(*) FROM qiaccess.inbox_entries WHERE status <> 'registering'", 4).await;
    let registered = "SELECT count(*) FROM qiaccess.inbox_entries WHERE relative_path = 'registered.csv' \
                      AND status = 'registered' AND capture_event_id IS NOT NULL AND moved_to IS NULL";
    assert_eq!(env.count(registered).await, 1);
    let failed = "SELECT count(*) FROM qiaccess.inbox_entries WHERE relative_path = 'intended.csv' \
                  AND status = 'failed' AND reason LIKE '%before it was registered%'";
    assert_eq!(env.count(failed).await, 1);
    let replaced = "SELECT count(*) FROM qiaccess.inbox_entries WHERE relative_path = 'replaced.csv' \
                    AND status = 'registered' AND reason LIKE 'the file was replaced%'";
    assert_eq!(env.count(replaced).await, 1);
    let link = "SELECT count(*) FROM qiaccess.inbox_entries WHERE relative_path = 'replaced.csv' \
                AND status = 'failed' AND moved_to = 'failed/replaced.csv' AND reason LIKE '%symbolic link%'";
    assert_eq!(env.count(link).await, 1);
    assert_eq!(env.count(CAPTURES).await, 2);
    w.stop().await;
    // The intent's bytes were staged, never flushed into a blob (decision 0027): no orphan blob;
    // after a real crash its temp file is left in the store's tmp/ and swept as stale.
    let referenced = env.count("SELECT count(DISTINCT content_sha256) FROM qinexus.file_versions").await;
    assert_eq!(env.blob_hashes().await.len() as i64 - referenced, 0);
}
