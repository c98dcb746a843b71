//! Key and session lifecycle around the auth matrix: keys are shown once, revocation is
//! immediate and tenant-bound, sign-in failures look alike, and the audit trail records the
//! security-relevant actions without ever holding a secret.

mod common;

use common::Env;
use serde_json::{Value, json};
use spine_core::auth::{Role, Scope};
use uuid::Uuid;

struct Fx {
    env: Env,
    a: Uuid,
    admin_a: String,
    admin_b: String,
    service: String,
}

async fn fx() -> Fx {
    let env = Env::new().await;
    let a = env.seed_tenant("tenant-a").await;
    let b = env.seed_tenant("tenant-b").await;
    let (admin_a, _) = env.seed_api_key(a, &[Scope::Admin]).await;
    let (admin_b, _) = env.seed_api_key(b, &[Scope::Admin]).await;
    let service = env.seed_service_key(false).await;
    Fx { env, a, admin_a, admin_b, service }
}

/// Creates a key through the API; returns the response body.
async fn create_key(env: &Env, bearer: &str, path: &str) -> Value {
    let r = env.send("POST", path, Some(&json!({ "name": "created", "scopes": ["records:read"] })), Some(bearer)).await;
    r.expect(201, None, &format!("POST {path}"));
    r.json.unwrap()
}

fn key_of(created: &Value) -> (String, String, String) {
    let key = created["key"].as_str().expect("a created key carries `key`").to_owned();
    let prefix = created["prefix"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    (key, prefix, id)
}

#[tokio::test]
async fn created_key_is_returned_once_and_listed_by_prefix_only() {
    let f = fx().await;
    let env = &f.env;
    for (bearer, path) in [(&f.admin_a, "/v1/keys"), (&f.service, "/v1/tenants/tenant-a/keys")] {
        let created = create_key(env, bearer, path).await;
        let (key, prefix, id) = key_of(&created);
        assert!(key.starts_with(&format!("{prefix}_")), "{created}");
        assert_eq!(created["tenant_id"], json!(f.a));
        let secret_part = &key[prefix.len() + 1..];
        env.send("GET", "/v1/whoami", None, Some(&key)).await.expect(200, None, "the new key works");

        let list = env.send("GET", "/v1/keys", None, Some(&f.admin_a)).await;
        list.expect(200, None, "GET /v1/keys");
        assert!(!list.text.contains(&key) && !list.text.contains(secret_part), "listing leaks the key: {}", list.text);
        let items = list.json.unwrap();
        let items = items.as_array().unwrap();
        assert!(items.iter().all(|k| k.get("key").is_none()), "a listed key has a `key` field");
        let mine = items.iter().find(|k| k["id"] == id.as_str()).expect("the new key is listed");
        assert_eq!(mine["prefix"], prefix.as_str());

        // Only the hash is stored.
        let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(k)::text FROM qivault.api_keys k")
            .fetch_all(env.pool())
            .await
            .unwrap();
        assert!(rows.iter().all(|r| !r.contains(secret_part)), "the key's secret is stored");
    }
}

#[tokio::test]
async fn revoked_key_stops_working_immediately() {
    let f = fx().await;
    let env = &f.env;
    let (key, _, id) = key_of(&create_key(env, &f.admin_a, "/v1/keys").await);
    env.send("GET", "/v1/whoami", None, Some(&key)).await.expect(200, None, "before revocation");
    let r = env.send("DELETE", &format!("/v1/keys/{id}"), None, Some(&f.admin_a)).await;
    r.expect(200, None, "revoke");
    let body = r.json.unwrap();
    assert_eq!(body["status"], "revoked");
    assert!(body.get("key").is_none());
    let revoked_at = body["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{body}");
    for path in ["/v1/whoami", "/v1/tenant", "/v1/registry/schemas"] {
        env.send("GET", path, None, Some(&key)).await.expect(401, Some("unauthenticated"), path);
    }
    // Revoking again is harmless and keeps the first revocation time.
    let again = env.send("DELETE", &format!("/v1/keys/{id}"), None, Some(&f.admin_a)).await;
    again.expect(200, None, "revoke twice");
    assert_eq!(again.json.unwrap()["revoked_at"], revoked_at);

    // An admin key may revoke itself; its next request is refused.
    let (self_key, _, self_id) = key_of(
        &env.send("POST", "/v1/keys", Some(&json!({ "name": "self", "scopes": ["admin"] })), Some(&f.admin_a))
            .await
            .json
            .unwrap(),
    );
    env.send("DELETE", &format!("/v1/keys/{self_id}"), None, Some(&self_key)).await.expect(200, None, "self-revoke");
    env.send("GET", "/v1/keys", None, Some(&self_key)).await.expect(401, Some("unauthenticated"), "after self-revoke");
}

#[tokio::test]
async fn revoking_another_tenants_key_is_404_and_changes_nothing() {
    let f = fx().await;
    let env = &f.env;
    let (key_b, _, id_b) = key_of(&create_key(env, &f.admin_b, "/v1/keys").await);
    env.seed_user("owner@a.example", "owner password 1", false, Some((f.a, Role::Owner))).await;
    let owner_a = env.login("owner@a.example", "owner password 1").await;
    let mut messages = Vec::new();
    for bearer in [&f.admin_a, &owner_a] {
        let r = env.send("DELETE", &format!("/v1/keys/{id_b}"), None, Some(bearer)).await;
        r.expect(404, Some("not_found"), "cross-tenant revoke");
        messages.push(message(&r));
    }
    let unknown = env.send("DELETE", &format!("/v1/keys/{}", Uuid::now_v7()), None, Some(&f.admin_a)).await;
    unknown.expect(404, Some("not_found"), "unknown key id");
    assert_eq!(messages[0], message(&unknown), "another tenant's key must look like an unknown one");

    env.send("GET", "/v1/whoami", None, Some(&key_b)).await.expect(200, None, "B's key still works");
    let status: String = sqlx::query_scalar("SELECT status FROM qivault.api_keys WHERE id = $1::uuid")
        .bind(&id_b)
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(status, "active");
    let revokes = env.scalar("SELECT count(*) FROM core.audit_events WHERE action = 'api_key.revoke'").await;
    assert_eq!(revokes, 0, "a refused revocation was audited as done");
}

fn message(r: &common::Resp) -> Value {
    r.json.as_ref().unwrap()["message"].clone()
}

#[tokio::test]
async fn login_failures_look_alike() {
    let f = fx().await;
    let env = &f.env;
    env.seed_user("ann@a.example", "ann's password", false, Some((f.a, Role::Editor))).await;
    let attempts = [
        json!({ "email": "ann@a.example", "password": "not ann's password" }),
        json!({ "email": "nobody@a.example", "password": "ann's password" }),
        json!({ "email": "not an email", "password": "ann's password" }),
        json!({ "email": "ANN@A.EXAMPLE", "password": "ANN'S PASSWORD" }),
    ];
    let mut messages = Vec::new();
    for body in &attempts {
        let r = env.send("POST", "/v1/auth/login", Some(body), None).await;
        r.expect(401, Some("invalid_credentials"), &format!("login {body}"));
        messages.push(message(&r));
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "failure messages differ: {messages:?}");
    // The email is case-insensitive, the password is not.
    let ok = env
        .send(
            "POST",
            "/v1/auth/login",
            Some(&json!({ "email": " Ann@A.Example ", "password": "ann's password" })),
            None,
        )
        .await;
    ok.expect(200, None, "login with differently cased email");
    let s = ok.json.unwrap();
    assert_eq!(s["role"], "editor");
    assert_eq!(s["tenant_id"], json!(f.a));
}

#[tokio::test]
async fn audit_records_logins_and_key_changes_without_secrets() {
    let f = fx().await;
    let env = &f.env;
    let password = "correct horse battery staple";
    let wrong = "incorrect horse battery staple";
    let user = env.seed_user("ann@a.example", password, false, Some((f.a, Role::Owner))).await;
    let ok = env
        .send("POST", "/v1/auth/login", Some(&json!({ "email": "ann@a.example", "password": password })), None)
        .await;
    ok.expect(200, None, "login");
    let token = ok.json.as_ref().unwrap()["token"].as_str().unwrap().to_owned();
    let bad =
        env.send("POST", "/v1/auth/login", Some(&json!({ "email": "ann@a.example", "password": wrong })), None).await;
    bad.expect(401, Some("invalid_credentials"), "wrong password");
    let unknown =
        env.send("POST", "/v1/auth/login", Some(&json!({ "email": "ghost@a.example", "password": wrong })), None).await;
    unknown.expect(401, Some("invalid_credentials"), "unknown email");
    let created =
        env.send("POST", "/v1/keys", Some(&json!({ "name": "audited", "scopes": ["admin"] })), Some(&token)).await;
    created.expect(201, None, "create key with a session");
    let (key, prefix, id) = key_of(created.json.as_ref().unwrap());
    let revoked = env.send("DELETE", &format!("/v1/keys/{id}"), None, Some(&f.admin_a)).await;
    revoked.expect(200, None, "revoke");

    type Ev = (String, String, Option<String>, String, Option<String>, Option<String>, Option<Uuid>);
    let events: Vec<Ev> = sqlx::query_as(
        "SELECT action, actor_kind, actor_id, outcome, target_id, request_id, tenant_id FROM core.audit_events
         ORDER BY occurred_at, id",
    )
    .fetch_all(env.pool())
    .await
    .unwrap();
    let find = |action: &str, outcome: &str, actor_kind: &str| {
        events
            .iter()
            .find(|e| e.0 == action && e.3 == outcome && e.1 == actor_kind)
            .unwrap_or_else(|| panic!("no {action} {outcome} by {actor_kind} in {events:#?}"))
    };
    let login_ok = find("auth.login", "success", "user");
    assert_eq!(login_ok.2.as_deref(), Some(user.to_string().as_str()));
    assert_eq!(login_ok.5, ok.request_id, "audit request_id matches the response header");
    assert_eq!(login_ok.6, Some(f.a));
    assert_eq!(find("auth.login", "failure", "user").2.as_deref(), Some(user.to_string().as_str()));
    assert_eq!(find("auth.login", "failure", "anonymous").2.as_deref(), Some("ghost@a.example"));
    let create = find("api_key.create", "success", "user");
    assert_eq!(create.4.as_deref(), Some(prefix.as_str()));
    assert_eq!(create.5, created.request_id);
    let revoke = find("api_key.revoke", "success", "api_key");
    assert_eq!(revoke.4.as_deref(), Some(prefix.as_str()));
    assert_eq!(revoke.6, Some(f.a));

    let secrets =
        [password, wrong, key.as_str(), &key[prefix.len() + 1..], token.as_str(), f.admin_a.as_str(), &f.admin_a[17..]];
    for row in env.audit_dump().await {
        for s in secrets {
            assert!(!row.contains(s), "audit row holds a secret ({}…): {row}", &s[..6]);
        }
    }
}

#[tokio::test]
async fn last_used_at_is_set_when_a_key_is_used() {
    let f = fx().await;
    let env = &f.env;
    let created = create_key(env, &f.admin_a, "/v1/keys").await;
    assert!(created["last_used_at"].is_null(), "{created}");
    let (key, _, id) = key_of(&created);
    let listed = |body: Value| body.as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).cloned().unwrap();
    let before = listed(env.send("GET", "/v1/keys", None, Some(&f.admin_a)).await.json.unwrap());
    assert!(before["last_used_at"].is_null(), "{before}");
    env.send("GET", "/v1/registry/schemas", None, Some(&key)).await.expect(200, None, "use the key");
    let after = listed(env.send("GET", "/v1/keys", None, Some(&f.admin_a)).await.json.unwrap());
    assert!(after["last_used_at"].is_string(), "last_used_at not set after use: {after}");
    let svc_used = env.scalar("SELECT count(*) FROM qivault.service_keys WHERE last_used_at IS NOT NULL").await;
    assert_eq!(svc_used, 0);
    env.send("GET", "/v1/tenants", None, Some(&f.service)).await.expect(200, None, "use the service key");
    let svc_used = env.scalar("SELECT count(*) FROM qivault.service_keys WHERE last_used_at IS NOT NULL").await;
    assert_eq!(svc_used, 1, "service key last_used_at not set");
}

#[tokio::test]
async fn sessions_follow_membership_and_tenant_status() {
    let f = fx().await;
    let env = &f.env;
    let user = env.seed_user("ann@a.example", "ann's password", false, Some((f.a, Role::Owner))).await;
    let token = env.login("ann@a.example", "ann's password").await;
    env.send("GET", "/v1/keys", None, Some(&token)).await.expect(200, None, "owner");
    // Demoted: the role is read per request, not from the token.
    sqlx::query("UPDATE qisystem.tenant_memberships SET role = 'viewer' WHERE user_id = $1")
        .bind(user)
        .execute(env.pool())
        .await
        .unwrap();
    env.send("GET", "/v1/keys", None, Some(&token)).await.expect(403, Some("forbidden"), "demoted to viewer");
    env.suspend_tenant(f.a).await;
    env.send("GET", "/v1/whoami", None, Some(&token)).await.expect(403, Some("tenant_suspended"), "suspended");
    let r = env
        .send("POST", "/v1/auth/login", Some(&json!({ "email": "ann@a.example", "password": "ann's password" })), None)
        .await;
    r.expect(403, Some("tenant_suspended"), "login into a suspended tenant");
    sqlx::query("DELETE FROM qisystem.tenant_memberships WHERE user_id = $1")
        .bind(user)
        .execute(env.pool())
        .await
        .unwrap();
    env.send("GET", "/v1/whoami", None, Some(&token)).await.expect(401, Some("unauthenticated"), "membership removed");
}
