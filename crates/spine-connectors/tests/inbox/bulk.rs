//! Thousands of files dropped at once.

use std::fs;
use std::time::{Duration, Instant};

use crate::helpers::{Env, files_under, wait_for};

const FILES: usize = 2000;

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn two_thousand_files_dropped_at_once_are_each_registered_once() {
    let env = Env::new(None).await;
    let folders = env.folder(|f| f.settle_ms = 300).await;
    let root = folders[0].path.clone();
    let w = env.start(folders);
    w.idle_after_rescans(1).await;
    let fds_before = open_fds();

    let start = Instant::now();
    for i in 0..FILES {
        let dir = if i % 10 == 0 { root.join("batch") } else { root.clone() };
        if i == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        fs::write(dir.join(format!("f{i:05}.txt")), format!("file {i}\n")).unwrap();
    }
    let written = start.elapsed();

    let mut max_fds = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        max_fds = max_fds.max(open_fds());
        let n = env.count("SELECT count(*) FROM qiaccess.capture_events").await;
        if n as usize >= FILES {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} of {FILES} registered after 600 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registered = start.elapsed();
    wait_for("every file moved", || async { files_under(&root).iter().all(|p| p.starts_with("processed")) }).await;
    let moved = start.elapsed();
    eprintln!(
        "inbox bulk: {FILES} files written in {:.2} s, registered in {:.2} s ({:.0} files/s, settle 300 ms included), \
         all moved in {:.2} s; open fds {fds_before} before, at most {max_fds} during",
        written.as_secs_f64(),
        registered.as_secs_f64(),
        FILES as f64 / registered.as_secs_f64(),
        moved.as_secs_f64(),
    );

    w.idle_after_rescans(1).await;
    let n = FILES as i64;
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.capture_events").await, n);
    assert_eq!(env.count("SELECT count(DISTINCT details ->> 'relative_path') FROM qiaccess.capture_events").await, n);
    assert_eq!(env.count("SELECT count(*) FROM qinexus.files").await, n);
    assert_eq!(env.count("SELECT count(*) FROM qiserver.jobs WHERE kind = 'spine.file.process'").await, n);
    assert_eq!(env.count("SELECT count(*) FROM qiaccess.inbox_entries WHERE status = 'registered'").await, n);
    assert_eq!(files_under(&root.join("processed")).len(), FILES);
    assert!(root.join("processed/batch/f00010.txt").exists());
    assert!(max_fds < fds_before + 200, "bounded open files: {max_fds} during, {fds_before} before");
    let s = w.snapshot();
    assert_eq!((s.registered, s.duplicates, s.failed), (FILES as u64, 0, 0));
    w.stop().await;
    env.assert_consistent().await;
}
