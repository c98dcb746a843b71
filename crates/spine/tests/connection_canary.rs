//! Connection secrets through a running `spine up` at debug log level (issue 5's security tests):
//! a canary token given at creation, a rotated one and a refused one appear in no API response
//! and in no log line, across create, list, show, test, health, rotation (accepted and refused),
//! events, rate limits and delete. The remote is a JSON API on loopback that this test runs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;

use common::{Env, Up, http, text};
use serde_json::json;

const KEY: &str = r#"["k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]"#;
const CANARY: &str = "canary-up-5a1f-TOKEN-c0ffee";
const CANARY2: &str = "canary-up-77d3-ROTATED-beef";
const BAD: &str = "canary-up-0bad-REFUSED-dead";

/// A JSON API that accepts the two canary tokens and refuses anything else with 401.
fn remote() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (mut auth, mut len) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("authorization:") {
                    auth = line.clone();
                } else if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let ok = auth.contains(CANARY) || auth.contains(CANARY2);
            let (status, payload) =
                if ok { ("200 OK", r#"{"people":[]}"#) } else { ("401 Unauthorized", r#"{"error":"no"}"#) };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                payload.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn connection_secrets_never_reach_logs_or_responses() {
    let env = Env::new();
    let cli = |args: &[&str]| {
        let out = env
            .spine()
            .env("SPINE_VAULT__MASTER_KEYS", KEY)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    cli(&["tenant", "create", "acme", "--integrations"]);
    let key: serde_json::Value = serde_json::from_str(&cli(&[
        "key",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ops",
        "--scope",
        "connections:admin",
        "--json",
    ]))
    .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let up = Up::start(&env, &[("SPINE_VAULT__MASTER_KEYS", KEY), ("SPINE_LOG__LEVEL", "debug")]);
    let base = remote();
    let mut bodies = Vec::new();
    let mut call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let r = http(&up.host, method, path, Some(&key), body.as_ref());
        bodies.push(format!("{method} {path}: {} {}", r.status, r.body));
        r
    };
    let config = |token: &str| json!({"base_url": base, "path": "/people", "auth": {"type": "bearer", "token": token}});

    let r = call(
        "POST",
        "/v1/connections",
        Some(json!({"connector_type": "http_json", "name": "crm", "config": config(CANARY)})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/connections/{id}");
    assert_eq!(call("GET", "/v1/connections", None).status, 200);
    assert_eq!(call("GET", &path, None).status, 200);
    let t = call("POST", &format!("{path}/test"), None);
    assert_eq!((t.status, t.json()["ok"].as_bool()), (200, Some(true)), "{}", t.body);
    assert_eq!(call("GET", &format!("{path}/health"), None).json()["ok"], true);
    let rotated = call("PATCH", &path, Some(json!({"config": config(CANARY2)})));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let refused = call("PATCH", &path, Some(json!({"config": config(BAD)})));
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(call("GET", &format!("{path}/health/history"), None).status, 200);
    assert_eq!(call("GET", &format!("{path}/events"), None).status, 200);
    assert_eq!(call("GET", &format!("{path}/rate-limit"), None).status, 200);
    assert_eq!(call("DELETE", &path, None).status, 204);

    let (status, log) = up.terminate();
    assert!(status.success());
    assert!(log.contains("credential rotation"), "rotations are logged (without values): {log}");
    assert!(log.contains(&id), "the connection's requests are in the captured log");
    for s in [CANARY, CANARY2, BAD] {
        assert!(!log.contains(s), "a connection secret appeared in the log: {s}");
        for b in &bodies {
            assert!(!b.contains(s), "a connection secret appeared in a response: {s} in {b}");
        }
    }
}
