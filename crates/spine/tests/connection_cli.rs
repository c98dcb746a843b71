//! `spine connection …` through the binary: secrets come only from stdin or --secret-file (a
//! secret in --config is refused), no output ever shows one, configs get field-level errors,
//! tenants without integrations are refused, and the whole create/list/show/update/disable/
//! enable/delete cycle works on the private cluster. Against a JSON API the test runs on
//! loopback: `update` tests new credentials first (a refused token keeps the old one), and
//! `connection test|health` print the redacted diagnosis and exit 1 when the check fails.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use common::{Env, text};

const KEY: &str = r#"["k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]"#;
const CANARY: &str = "canary-cli-91d2-TOKEN";
const CANARY2: &str = "canary-cli-4e7b-ROTATED";
const BAD: &str = "canary-cli-0bad-REFUSED";

/// The remote JSON API: accepts CANARY and CANARY2, remembers the tokens it was shown.
#[derive(Clone, Default)]
struct Remote {
    seen: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

impl Remote {
    fn last_seen(&self) -> String {
        self.seen.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

async fn people(State(r): State<Remote>, h: HeaderMap) -> Response {
    let token = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").trim_start_matches("Bearer ");
    r.seen.lock().unwrap().push(token.to_owned());
    if r.down.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    } else if token == CANARY || token == CANARY2 {
        axum::Json(serde_json::json!({"people": []})).into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

/// Starts the remote on its own thread and runtime; its base URL.
fn remote() -> (Remote, String) {
    let r = Remote::default();
    let app = axum::Router::new().route("/api/people", axum::routing::get(people)).with_state(r.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (r, format!("http://{}/api", rx.recv().unwrap()))
}

fn run(env: &Env, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = env.spine();
    cmd.env("SPINE_VAULT__MASTER_KEYS", KEY).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spine runs");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    for c in [CANARY, CANARY2, BAD] {
        assert!(!text(&out.stdout).contains(c) && !text(&out.stderr).contains(c), "{args:?} printed a secret");
    }
    out
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn connection_lifecycle_keeps_secrets_off_argv_and_output() {
    let env = Env::new();
    assert!(run(&env, &["tenant", "create", "acme", "--integrations"], None).status.success());
    assert!(run(&env, &["tenant", "create", "beta"], None).status.success());
    let (remote, base) = remote();
    let config = &format!(r#"{{"base_url":"{base}","path":"/people","method":"GET","auth":{{"type":"bearer"}}}}"#);

    // A secret on the command line is refused before anything is stored.
    let argv_secret =
        format!(r#"{{"base_url":"https://api.example.org","auth":{{"type":"bearer","token":"{CANARY}"}}}}"#);
    let out = run(
        &env,
        &[
            "connection",
            "create",
            "--tenant",
            "acme",
            "--type",
            "http_json",
            "--name",
            "api",
            "--config-json",
            &argv_secret,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("auth.token is a secret"), "{}", text(&out.stderr));

    // Without the secret: field-level errors.
    let create =
        ["connection", "create", "--tenant", "acme", "--type", "http_json", "--name", "api", "--config-json", config];
    let out = run(&env, &create, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("auth.token: required"), "{}", text(&out.stderr));

    // With the secret on stdin.
    let c = ok_json(&run(
        &env,
        &[&create[..], &["--json"]].concat(),
        Some(&format!(r#"{{"auth":{{"token":"{CANARY}"}}}}"#)),
    ));
    assert_eq!(c["secrets_set"], serde_json::json!(["auth.token"]));
    assert_eq!(c["config"]["auth"], serde_json::json!({"type": "bearer"}));
    assert_eq!(c["status"], "active");

    // webhook_out with --secret-file; a second one is refused (single instance).
    let secret_file = env.dir.path().join("hook.secret.json");
    std::fs::write(&secret_file, format!(r#"{{"auth":{{"signing_secret":"{CANARY}-signing"}}}}"#)).unwrap();
    let hook = [
        "connection",
        "create",
        "--tenant",
        "acme",
        "--type",
        "webhook_out",
        "--name",
        "events",
        "--config-json",
        r#"{"url":"https://hooks.example.org/in"}"#,
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--json",
    ];
    assert_eq!(ok_json(&run(&env, &hook, None))["secrets_set"], serde_json::json!(["auth.signing_secret"]));
    let mut again = hook;
    again[7] = "events-2";
    let out = run(&env, &again, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("one connection per tenant"), "{}", text(&out.stderr));

    let list = ok_json(&run(&env, &["connection", "list", "--tenant", "acme", "--json"], None));
    assert_eq!(list.as_array().unwrap().len(), 2);
    let out = run(&env, &["connection", "list", "--tenant", "acme"], None);
    assert!(text(&out.stdout).contains("SECRETS_SET") && text(&out.stdout).contains("auth.token"));

    // Rotate the token from a file, rename, disable, enable.
    let token_file = env.dir.path().join("token.json");
    std::fs::write(&token_file, format!(r#"{{"auth":{{"token":"{CANARY2}"}}}}"#)).unwrap();
    let u = ok_json(&run(
        &env,
        &[
            "connection",
            "update",
            "api",
            "--tenant",
            "acme",
            "--name",
            "people-api",
            "--secret-file",
            token_file.to_str().unwrap(),
            "--json",
        ],
        None,
    ));
    assert_eq!(u["name"], "people-api");
    assert_eq!(u["secrets_set"], serde_json::json!(["auth.token"]));
    assert_eq!(remote.last_seen(), CANARY2, "the new token was tested before it was stored");

    // A token the remote refuses is not stored: exit 1 with the diagnosis; the old one stays.
    std::fs::write(&token_file, format!(r#"{{"auth":{{"token":"{BAD}"}}}}"#)).unwrap();
    let bad = ["connection", "update", "people-api", "--tenant", "acme", "--secret-file", token_file.to_str().unwrap()];
    let out = run(&env, &bad, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("failed the connector's test call"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("HTTP 401") && text(&out.stderr).contains("(auth)"), "{}", text(&out.stderr));
    assert_eq!(remote.last_seen(), BAD);
    let t = ok_json(&run(&env, &["connection", "test", "people-api", "--tenant", "acme", "--json"], None));
    assert_eq!(
        (t["ok"].as_bool(), t["check_kind"].as_str(), t["http_status"].as_i64()),
        (Some(true), Some("test"), Some(200))
    );
    assert_eq!(remote.last_seen(), CANARY2, "the old token is still in use");

    // Health: text and JSON; a failing remote exits 1 after printing the diagnosis.
    let out = run(&env, &["connection", "health", "people-api", "--tenant", "acme"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("health  ok") && text(&out.stdout).contains("/api/people: HTTP 200"),
        "{}",
        text(&out.stdout)
    );
    remote.down.store(true, Ordering::SeqCst);
    let out = run(&env, &["connection", "health", "people-api", "--tenant", "acme", "--json"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (h["ok"].as_bool(), h["error_class"].as_str(), h["http_status"].as_i64()),
        (Some(false), Some("server"), Some(500))
    );
    // --skip-test stores a token without calling the remote.
    let calls = remote.seen.lock().unwrap().len();
    std::fs::write(&token_file, format!(r#"{{"auth":{{"token":"{CANARY}"}}}}"#)).unwrap();
    let skip = [&bad[..], &["--skip-test"]].concat();
    assert!(run(&env, &skip, None).status.success());
    assert_eq!(remote.seen.lock().unwrap().len(), calls);
    remote.down.store(false, Ordering::SeqCst);
    let d = ok_json(&run(
        &env,
        &["connection", "disable", "people-api", "--tenant", "acme", "--reason", "maintenance", "--json"],
        None,
    ));
    assert_eq!(
        (d["status"].as_str(), d["status_reason"].as_str(), d["is_active"].as_bool()),
        (Some("disabled"), Some("maintenance"), Some(false))
    );
    let e = ok_json(&run(&env, &["connection", "enable", "people-api", "--tenant", "acme", "--json"], None));
    assert_eq!(e["status"], "active");
    let s = ok_json(&run(&env, &["connection", "show", c["id"].as_str().unwrap(), "--tenant", "acme", "--json"], None));
    assert_eq!(s["name"], "people-api");
    // Both changes are events, newest first, by the CLI; the failure policy is set with flags.
    let ev = ok_json(&run(&env, &["connection", "events", "people-api", "--tenant", "acme", "--json"], None));
    let changes: Vec<(String, String, String)> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (f("from_status"), f("to_status"), f("actor"))
        })
        .collect();
    assert_eq!(
        changes,
        [("disabled".into(), "active".into(), "cli".into()), ("active".into(), "disabled".into(), "cli".into())]
    );
    let out = run(&env, &["connection", "events", "people-api", "--tenant", "acme"], None);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("disabled -> active") && text(&out.stdout).contains("maintenance"));
    let policy = ["connection", "update", "people-api", "--tenant", "acme", "--degrade-after", "5"];
    let p = ok_json(&run(&env, &[&policy[..], &["--disable-after-secs", "3600", "--json"]].concat(), None));
    assert_eq!((p["degrade_after_failures"].as_i64(), p["disable_after_secs"].as_i64()), (Some(5), Some(3600)));
    let out = run(&env, &[&policy[..2], &["people-api", "--tenant", "acme", "--degrade-after", "0"]].concat(), None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("degrade_after_failures"), "{}", text(&out.stderr));

    // A tenant without integrations is refused with a hint.
    let out = run(&env, &["connection", "list", "--tenant", "beta"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("integrations are not enabled"), "{}", text(&out.stderr));

    let out = run(&env, &["connection", "delete", "people-api", "--tenant", "acme"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&env, &["connection", "show", "people-api", "--tenant", "acme"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no such connection"));
    let list = ok_json(&run(&env, &["connection", "list", "--tenant", "acme", "--json"], None));
    assert_eq!(list.as_array().unwrap().len(), 1);
}
