//! Canary secrets (session signing key, a password, API keys, a session token) must never appear
//! in logs, even at debug level, nor in any response after the one that shows a new key once.

mod common;

use common::{Env, Up, http, text};
use serde_json::json;

const SESSION_SECRET: &str = "canary-session-secret-7f3a9c1e5b2d4068";
const PASSWORD: &str = "canary-password-0d9e8f7a6b5c";
const WRONG_PASSWORD: &str = "canary-wrong-password-1a2b3c4d";
const DB_PASSWORD: &str = "canary-db-password-5e6f7a8b";

#[test]
fn canary_secrets_never_reach_logs_or_responses() {
    let env = Env::new();
    let up = Up::start(&env, &[("SPINE_AUTH__SESSION_SECRET", SESSION_SECRET), ("SPINE_LOG__LEVEL", "debug")]);
    let admin = up.bootstrap_key().unwrap();
    let mut bodies = Vec::new();
    let mut call = |method: &str, path: &str, bearer: Option<&str>, body: Option<serde_json::Value>| {
        let r = http(&up.host, method, path, bearer, body.as_ref());
        bodies.push(format!("{method} {path}: {}", r.body));
        r
    };
    let user = json!({"email": "canary@example.org", "display_name": "Canary", "password": PASSWORD, "role": "owner"});
    assert_eq!(call("POST", "/v1/users", Some(&admin), Some(user)).status, 201);
    let bad =
        call("POST", "/v1/auth/login", None, Some(json!({"email": "canary@example.org", "password": WRONG_PASSWORD})));
    assert_eq!(bad.status, 401);
    // The login answer is where the token is shown (once), so it is checked for the rest only.
    let login = http(
        &up.host,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "canary@example.org", "password": PASSWORD})),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    for s in [SESSION_SECRET, PASSWORD, &admin] {
        assert!(!login.body.contains(s), "a secret appeared in the login response");
    }
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let created =
        http(&up.host, "POST", "/v1/keys", Some(&token), Some(&json!({"name": "canary", "scopes": ["records:read"]})));
    assert_eq!(created.status, 201);
    let new_key = created.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(call("GET", "/v1/keys", Some(&admin), None).status, 200);
    assert_eq!(call("GET", "/v1/whoami", Some(&new_key), None).status, 200);
    assert_eq!(call("GET", "/v1/whoami", Some(&token), None).status, 200);
    assert_eq!(call("GET", "/v1/registry/fields", Some(&new_key), None).status, 200);
    let (status, log) = up.terminate();
    assert!(status.success());
    assert!(log.contains("request finished"), "requests should be logged: {log}");
    // Request spans carry the request id, and the tenant once the caller is authenticated.
    let whoami_line = log
        .lines()
        .find(|l| l.contains("request finished") && l.contains("/v1/whoami"))
        .expect("a logged whoami request");
    let line: serde_json::Value = serde_json::from_str(whoami_line).expect("JSON log line");
    assert!(line["span"]["request_id"].as_str().is_some_and(|s| !s.is_empty()), "{whoami_line}");
    assert!(line["span"]["tenant_id"].as_str().is_some_and(|s| s.len() == 36), "{whoami_line}");

    // `config show` masks secrets given in the environment.
    let shown = env
        .spine()
        .args(["config", "show", "--json"])
        .env("SPINE_AUTH__SESSION_SECRET", SESSION_SECRET)
        .env("DATABASE_URL", format!("postgres://spine:{DB_PASSWORD}@127.0.0.1/spine"))
        .output()
        .unwrap();
    assert!(shown.status.success());
    let shown = text(&shown.stdout) + &text(&shown.stderr);
    assert!(shown.contains("[redacted]"), "{shown}");

    let secrets = [SESSION_SECRET, PASSWORD, WRONG_PASSWORD, DB_PASSWORD, &admin, &new_key, &token];
    for s in secrets {
        assert!(!log.contains(s), "a secret appeared in the log: {}…", &s[..12]);
        assert!(!shown.contains(s), "a secret appeared in config show: {}…", &s[..12]);
        for b in &bodies {
            assert!(!b.contains(s), "a secret appeared in a response: {}… in {b}", &s[..12]);
        }
    }
}
