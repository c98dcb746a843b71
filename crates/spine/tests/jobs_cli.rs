//! The job engine through the binary: a cron schedule enqueues `spine.noop` every second,
//! `spine worker` runs them, `spine jobs` shows them; SIGTERM stops the worker cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Env, text};

#[test]
fn worker_runs_scheduled_jobs_and_stops_on_sigterm() {
    let env = Env::new();
    let out = env.run(&["tenant", "create", "jobs"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&[
        "schedules",
        "create",
        "--tenant",
        "jobs",
        "--name",
        "tick",
        "--kind",
        "spine.noop",
        "--cron",
        "* * * * * *",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let schedule: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = env.run(&["worker", "--kinds", "nope"]);
    assert_eq!(out.status.code(), Some(2), "unknown kinds are a usage error: {}", text(&out.stderr));

    let mut worker = env
        .spine()
        .args(["worker", "--concurrency", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("worker running"));

    // Wait (bounded) until the worker has run a few scheduled jobs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done = loop {
        let out = env.run(&["jobs", "list", "--state", "succeeded", "--kind", "spine.noop", "--json"]);
        let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let n = jobs.as_array().map(Vec::len).unwrap_or(0);
        if n >= 3 {
            break jobs;
        }
        assert!(std::time::Instant::now() < deadline, "the worker ran only {n} scheduled jobs in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(200)); // polling another process's work
    };
    let id = done[0]["id"].as_str().unwrap();
    let out = env.run(&["jobs", "show", id, "--json"]);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["attempt_history"][0]["outcome"], "succeeded");
    let out = env.run(&["schedules", "pause", schedule["id"].as_str().unwrap()]);
    assert!(out.status.success());
    let out = env.run(&["jobs", "stats", "--json"]);
    assert!(text(&out.stdout).contains("spine.noop"));

    assert!(std::process::Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap().success());
    let status = worker.wait().unwrap();
    assert!(status.success(), "worker exit: {status}");
    assert_eq!(env.cluster_pids(), Vec::<u32>::new(), "the last user stops the cluster");
}
