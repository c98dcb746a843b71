//! The operator's story for a failing job, through the binary: a `spine.http.check` against a
//! loopback server that answers 503 retries with the configured backoff, is quarantined with its
//! error and every attempt; the server is fixed, `spine jobs requeue` puts the job back, and it
//! succeeds. The HTTP peer is a real server on loopback, run by this test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Env, text};

/// Answers every request with the current `status`; counts requests.
fn serve(status: Arc<AtomicU16>, hits: Arc<AtomicUsize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            hits.fetch_add(1, Ordering::SeqCst);
            let code = status.load(Ordering::SeqCst);
            let reason = if code == 200 { "OK" } else { "Service Unavailable" };
            let _ = write!(s, "HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

fn show(env: &Env, id: &str) -> serde_json::Value {
    let out = env.run(&["jobs", "show", id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls (another process does the work) until the job reaches `state`.
fn wait_for(env: &Env, id: &str, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = show(env, id);
        if job["state"] == state {
            return job;
        }
        assert!(Instant::now() < deadline, "job never reached {state}: {job:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ts(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn a_failing_job_retries_is_quarantined_and_requeued_after_the_fix() {
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("spine.toml"),
        "[jobs.retry.\"spine.http.check\"]\nschedule_secs = [0.5, 1.0]\njitter = 0.0\n",
    )
    .unwrap();
    let (status, hits) = (Arc::new(AtomicU16::new(503)), Arc::new(AtomicUsize::new(0)));
    let port = serve(status.clone(), hits.clone());
    assert!(env.run(&["tenant", "create", "story"]).status.success());

    let out = env.run(&["jobs", "enqueue", "spine.nope", "--tenant", "story"]);
    assert_eq!(out.status.code(), Some(2), "an unknown kind is a usage error");
    assert!(text(&out.stderr).contains("spine.http.check"), "{}", text(&out.stderr));

    let payload = format!(r#"{{"type":"http_check.v1","url":"http://user:pw@127.0.0.1:{port}/health?token=t"}}"#);
    let out = env.run(&[
        "jobs",
        "enqueue",
        "spine.http.check",
        "--tenant",
        "story",
        "--payload",
        &payload,
        "--max-attempts",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].as_str().unwrap().to_owned();

    let mut worker = env
        .spine()
        .args(["worker", "--concurrency", "2", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let metrics = first.strip_prefix("metrics at http://").and_then(|r| r.strip_suffix("/metrics")).unwrap().to_owned();
    assert!(lines.next().unwrap().unwrap().contains("worker running"));

    // Three attempts, each a 503, with the configured backoff between them; then quarantine.
    let job = wait_for(&env, &id, "quarantined");
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["last_error_class"], "server");
    let msg = job["last_error_message"].as_str().unwrap();
    assert!(msg.contains("HTTP 503"), "{msg}");
    assert!(!msg.contains("pw") && !msg.contains("token"), "credentials in the URL are not repeated: {msg}");
    let history = job["attempt_history"].as_array().unwrap();
    let outcomes: Vec<&str> = history.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["failed", "failed", "quarantined"]);
    assert!(history.iter().all(|a| a["error_class"] == "server"));
    for (pair, want) in history.windows(2).zip([0.5, 1.0]) {
        let gap = (ts(&pair[1]["started_at"]) - ts(&pair[0]["finished_at"])).as_seconds_f64();
        assert!(gap >= want - 0.01, "retry came after {gap:.3} s, the schedule says {want} s");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let out = env.run(&["jobs", "list", "--state", "quarantined", "--json"]);
    assert!(text(&out.stdout).contains(&id), "the quarantined job is listed");
    // The worker process's own metrics: queue depth from the database, its failures by class.
    let scrape = common::http(&metrics, "GET", "/metrics", None, None);
    assert_eq!(scrape.status, 200);
    for line in [
        "spine_jobs{state=\"quarantined\",kind=\"spine.http.check\"} 1",
        "spine_job_failures_total{class=\"server\"} 3",
        "spine_worker_jobs_total{outcome=\"quarantined\"} 1",
    ] {
        assert!(scrape.body.lines().any(|l| l == line), "{line} missing from:\n{}", scrape.body);
    }

    // The operator fixes the cause, then requeues from the CLI.
    status.store(200, Ordering::SeqCst);
    let out = env.run(&["jobs", "requeue", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job = wait_for(&env, &id, "succeeded");
    let history = job["attempt_history"].as_array().unwrap();
    assert_eq!(history.len(), 4, "the history is kept across the requeue: {job:#}");
    assert_eq!(history[3]["outcome"], "succeeded");
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    assert!(std::process::Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap().success());
    assert!(worker.wait().unwrap().success());
}
