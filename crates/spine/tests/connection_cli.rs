//! `spine connection …` through the binary: secrets come only from stdin or --secret-file (a
//! secret in --config is refused), no output ever shows one, configs get field-level errors,
//! tenants without integrations are refused, and the whole create/list/show/update/disable/
//! enable/delete cycle works on the private cluster.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::{Env, text};

const KEY: &str = r#"["k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]"#;
const CANARY: &str = "canary-cli-91d2-TOKEN";
const CANARY2: &str = "canary-cli-4e7b-ROTATED";

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
    for c in [CANARY, CANARY2] {
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
    let config = r#"{"base_url":"https://api.example.org","method":"GET","auth":{"type":"bearer"}}"#;

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
