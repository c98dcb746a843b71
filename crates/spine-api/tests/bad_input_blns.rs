//! The Big List of Naughty Strings in every text input: tenant slug and display name, key names
//! (both key routes), the tenant path segment, login email and password, user email, display
//! name and password, and the registry query parameters. No answer may be a 5xx; a 4xx has the
//! error shape; an accepted value comes back exactly as validated (trimmed, and lowercased for
//! emails); a refused user creation writes nothing.
//!
//! The oracle for "accepted" is spine-core's own validators (`TenantSlug`, `DisplayName`,
//! `EmailAddress`, the 8-1024 character password policy): these tests check that the API, the
//! database constraints and the validators agree, and that no string breaks the layers between.

mod common;

use std::collections::HashMap;

use axum::body::Body;
use axum::http::Request;
use common::{Env, Resp, blns, call_all, json_request, url_encode};
use serde_json::{Value, json};
use spine_core::auth::{Role, Scope};
use spine_core::names::{DisplayName, EmailAddress, TenantSlug};
use uuid::Uuid;

/// Concurrent requests in flight (the test pool has 5 connections; sign-in holds one while it
/// runs argon2).
const WIDTH: usize = 4;

struct Fx {
    env: Env,
    a: Uuid,
    admin: String,
    service: String,
}

async fn fx() -> Fx {
    let env = Env::new().await;
    let a = env.seed_tenant("tenant-a").await;
    let (admin, _) = env.seed_api_key(a, &[Scope::Admin]).await;
    let service = env.seed_service_key(false).await;
    Fx { env, a, admin, service }
}

fn short(s: &str) -> String {
    let t: String = s.chars().take(40).collect();
    format!("{t:?}")
}

/// Checks one answer for a text field: refused → 400 invalid_request naming `field`; accepted
/// → `ok` (201 or 200) and `returned` equals `want`. `dup_ok` also allows 409 (the normalised
/// value occurs more than once in the list).
fn judge(r: &Resp, accepted: bool, field: &str, returned: &str, want: &str, dup_ok: bool) -> Result<(), String> {
    r.sane()?;
    if !accepted {
        if r.status != 400 || r.code() != Some("invalid_request") {
            return Err(format!("expected 400 invalid_request, got {} {}", r.status, r.text));
        }
        let f = r.json.as_ref().and_then(|j| j["details"]["field"].as_str());
        return if f == Some(field) { Ok(()) } else { Err(format!("details.field {f:?}, expected {field}")) };
    }
    match r.status {
        200 | 201 => {
            let got = r.json.as_ref().and_then(|j| j[returned].as_str());
            if got == Some(want) { Ok(()) } else { Err(format!("{returned} came back as {got:?}, sent {want:?}")) }
        }
        409 if dup_ok => Ok(()),
        s => Err(format!("valid value refused: {s} {}", r.text)),
    }
}

fn post(path: &str, body: Value, bearer: &str) -> Request<Body> {
    json_request("POST", path, Some(&body), Some(bearer))
}

fn fail_list(what: &str, failures: &[String]) -> String {
    format!("{} {what} cases failed:\n{}", failures.len(), failures.join("\n"))
}

fn occurrences<'a>(values: impl Iterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for v in values {
        *m.entry(v.to_owned()).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naughty_strings_in_tenant_key_and_registry_inputs() {
    let list = blns();
    let f = fx().await;
    let env = &f.env;
    let mut failures = Vec::new();

    // 1. Read-only inputs first (before any tenant named like a naughty string exists).
    let mut reqs = Vec::new();
    for s in &list {
        let e = url_encode(s);
        for path in [
            format!("/v1/registry/tables?schema={e}"),
            format!("/v1/registry/fields?schema={e}"),
            format!("/v1/registry/fields?schema=core&table={e}"),
            format!("/v1/registry/schemas?schema={e}"),
        ] {
            reqs.push(json_request("GET", &path, None, Some(&f.admin)));
        }
        reqs.push(post(&format!("/v1/tenants/{e}/keys"), json!({ "name": "k", "scopes": ["admin"] }), &f.service));
    }
    let answers = call_all(&env.state, reqs, WIDTH).await;
    for (i, s) in list.iter().enumerate() {
        for (j, r) in answers[i * 5..i * 5 + 5].iter().enumerate() {
            let res = match j {
                // A filter that is not an identifier is refused with 400 (it could match nothing).
                0..=3 if r.status == 200 && r.json.as_ref().is_some_and(Value::is_array) => Ok(()),
                0..=2 if r.status == 400 && r.code() == Some("invalid_request") => r.sane(),
                0..=3 => Err(format!("registry query {j}: {} {}", r.status, r.text)),
                _ => r.sane().and_then(|_| match (r.status, r.code()) {
                    (404, Some("not_found")) => Ok(()),
                    _ => Err(format!("tenant path: {} {}", r.status, r.text)),
                }),
            };
            if let Err(e) = res {
                failures.push(format!("#{i} {}: {e}", short(s)));
            }
        }
    }

    // 2. Creation: slug, tenant display name, key name on both key routes.
    let slugs = occurrences(list.iter().map(String::as_str));
    let mut reqs = Vec::new();
    for (i, s) in list.iter().enumerate() {
        reqs.push(post("/v1/tenants", json!({ "slug": s, "display_name": "Naughty" }), &f.service));
        reqs.push(post("/v1/tenants", json!({ "slug": format!("n-{i}"), "display_name": s }), &f.service));
        reqs.push(post("/v1/tenants/tenant-a/keys", json!({ "name": s, "scopes": ["records:read"] }), &f.service));
        reqs.push(post("/v1/keys", json!({ "name": s, "scopes": ["records:read"] }), &f.admin));
    }
    let answers = call_all(&env.state, reqs, WIDTH).await;
    let (mut tenants_made, mut keys_made, mut names) = (0, 0, Vec::new());
    for (i, s) in list.iter().enumerate() {
        let rs = &answers[i * 4..i * 4 + 4];
        let name = DisplayName::parse("x", s).map(|n| n.into_inner());
        let name_ok = name.is_ok();
        let want = name.unwrap_or_default();
        let checks = [
            judge(&rs[0], TenantSlug::parse(s).is_ok(), "slug", "slug", s, slugs[s.as_str()] > 1),
            judge(&rs[1], name_ok, "display_name", "display_name", &want, false),
            judge(&rs[2], name_ok, "name", "name", &want, false),
            judge(&rs[3], name_ok, "name", "name", &want, false),
        ];
        for (j, c) in checks.into_iter().enumerate() {
            if let Err(e) = c {
                failures.push(format!("#{i} {} field {j}: {e}", short(s)));
            }
        }
        tenants_made += rs[..2].iter().filter(|r| r.status == 201).count() as i64;
        keys_made += rs[2..].iter().filter(|r| r.status == 201).count() as i64;
        if name_ok {
            names.extend([want.clone(), want]);
        }
    }
    assert!(failures.is_empty(), "{}", fail_list("tenant/key/registry", &failures));

    // Exactly the accepted requests wrote rows and audit events, and the names list back intact.
    assert_eq!(env.scalar("SELECT count(*) FROM core.tenants").await, 1 + tenants_made);
    assert_eq!(env.scalar("SELECT count(*) FROM core.audit_events WHERE action = 'tenant.create'").await, tenants_made);
    assert_eq!(env.scalar("SELECT count(*) FROM qivault.api_keys").await, 1 + keys_made);
    assert_eq!(env.scalar("SELECT count(*) FROM core.audit_events WHERE action = 'api_key.create'").await, keys_made);
    let listed = env.send("GET", "/v1/keys", None, Some(&f.admin)).await;
    listed.expect(200, None, "GET /v1/keys");
    let mut got: Vec<String> =
        listed.json.unwrap().as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_owned()).collect();
    got.retain(|n| n != "seeded");
    got.sort();
    names.sort();
    assert_eq!(got, names, "key names do not round-trip through GET /v1/keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naughty_strings_in_login() {
    let list = blns();
    let f = fx().await;
    let env = &f.env;
    env.seed_user("known@a.example", "the real password", false, Some((f.a, Role::Owner))).await;
    let mut reqs = Vec::new();
    for s in &list {
        let login = |body: Value| json_request("POST", "/v1/auth/login", Some(&body), None);
        reqs.push(login(json!({ "email": s, "password": "the real password" })));
        reqs.push(login(json!({ "email": "known@a.example", "password": s })));
    }
    let answers = call_all(&env.state, reqs, WIDTH).await;
    let mut failures = Vec::new();
    for (i, r) in answers.iter().enumerate() {
        let s = &list[i / 2];
        let field = if i % 2 == 0 { "email" } else { "password" };
        let ok = r.sane().and_then(|_| match (r.status, r.code()) {
            (401, Some("invalid_credentials")) => Ok(()),
            _ => Err(format!("{} {}", r.status, r.text)),
        });
        if let Err(e) = ok {
            failures.push(format!("#{} {} as {field}: {e}", i / 2, short(s)));
        }
    }
    assert!(failures.is_empty(), "{}", fail_list("login", &failures));
    let failed =
        env.scalar("SELECT count(*) FROM core.audit_events WHERE action = 'auth.login' AND outcome = 'failure'");
    assert_eq!(failed.await, answers.len() as i64, "every failed sign-in is audited once");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum UserField {
    Email,
    EmailLocalPart,
    DisplayName,
    Password,
}

/// Control, format and line/paragraph-separator characters, and blank strings.
fn invisible_or_control(s: &str) -> bool {
    let format = |c: char| {
        matches!(c as u32,
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E
            | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x1D173..=0x1D17A | 0xE0001..=0xE007F)
    };
    s.trim().is_empty() || s.chars().any(|c| c.is_control() || format(c))
}

/// The deterministic subset of the list (~100 of 515) for the user-creation fields that cost an
/// argon2 hash per accepted value: every string with control, format or separator characters or
/// blank, every one with both SQL metacharacters and non-ASCII text, then every 7th remaining
/// string with SQL metacharacters (`'` `"` `;` `--` `\` `/*` `%`), every 3rd remaining non-ASCII
/// one and every 12th of the rest. `SPINE_BLNS_FULL=1` sweeps the whole list instead.
fn user_subset(list: &[String]) -> Vec<bool> {
    if std::env::var_os("SPINE_BLNS_FULL").is_some_and(|v| v == "1") {
        return vec![true; list.len()];
    }
    let (mut sql_n, mut uni_n, mut other_n) = (0, 0, 0);
    list.iter()
        .map(|s| {
            let sql = s.contains(['\'', '"', ';', '\\', '%']) || s.contains("--") || s.contains("/*");
            let uni = !s.is_ascii();
            let nth = |n: &mut usize, k: usize| {
                *n += 1;
                *n % k == 1
            };
            invisible_or_control(s)
                || (sql && uni)
                || if sql {
                    nth(&mut sql_n, 7)
                } else if uni {
                    nth(&mut uni_n, 3)
                } else {
                    nth(&mut other_n, 12)
                }
        })
        .collect()
}

/// Users. The email field takes every string (cheap: nearly all are refused before hashing);
/// the costlier fields (email local part, display name, password: each accepted value costs an
/// argon2 hash, each accepted password a sign-in) take `user_subset`, since the full list takes
/// ~40 s instead of ~7 s on two cores in a debug build (it passes; run it with SPINE_BLNS_FULL=1). Requests go
/// `WIDTH` at a time; the counts of users, memberships and user.create audit rows are taken
/// around each batch and must grow by exactly the batch's 201s, and every 201's user has its
/// membership and audit row, so a refused request can have written nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naughty_strings_in_user_creation_write_all_or_nothing() {
    let list = blns();
    let subset = user_subset(&list);
    let picked = subset.iter().filter(|p| **p).count();
    assert!(picked >= 90, "the user-creation subset shrank to {picked}");
    let f = fx().await;
    let env = &f.env;
    let mut cases = Vec::new();
    for (i, s) in list.iter().enumerate() {
        for field in [UserField::Email, UserField::EmailLocalPart, UserField::DisplayName, UserField::Password] {
            if field != UserField::Email && !subset[i] {
                continue;
            }
            let email = match field {
                UserField::Email => s.clone(),
                UserField::EmailLocalPart => format!("{s}@naughty.example"),
                _ => format!("u{i}-{field:?}@users.example").to_lowercase(),
            };
            let name = if field == UserField::DisplayName { s.clone() } else { "Naughty".to_owned() };
            let password = if field == UserField::Password { s.clone() } else { "a valid password".to_owned() };
            cases.push((i, field, email, name, password));
        }
    }
    // The normalised emails of the cases every validator accepts: each must end up as one user.
    let valid: Vec<String> = cases
        .iter()
        .filter(|c| DisplayName::parse("display_name", &c.3).is_ok() && (8..=1024).contains(&c.4.chars().count()))
        .filter_map(|c| EmailAddress::parse(&c.2).ok().map(|e| e.into_inner()))
        .collect();
    let emails = occurrences(valid.iter().map(String::as_str));
    let counts = || async {
        (
            env.scalar("SELECT count(*) FROM core.users").await,
            env.scalar("SELECT count(*) FROM qisystem.tenant_memberships").await,
            env.scalar("SELECT count(*) FROM core.audit_events WHERE action = 'user.create'").await,
        )
    };
    let mut failures = Vec::new();
    let mut created: Vec<(usize, String, String)> = Vec::new(); // (case, email, password) for sign-in
    for (b, batch) in cases.chunks(WIDTH).enumerate() {
        let before = counts().await;
        let reqs = batch
            .iter()
            .map(|(_, _, email, name, password)| {
                let body = json!({ "email": email, "display_name": name, "password": password, "role": "viewer" });
                post("/v1/users", body, &f.admin)
            })
            .collect();
        let answers = call_all(&env.state, reqs, WIDTH).await;
        let after = counts().await;
        let made = answers.iter().filter(|r| r.status == 201).count() as i64;
        let delta = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
        assert_eq!(delta, (made, made, made), "batch {b}: users/memberships/audit grew unevenly for {made} created");
        for ((i, field, email, name, password), r) in batch.iter().zip(&answers) {
            let s = &list[*i];
            let norm_email = EmailAddress::parse(email).map(|e| e.into_inner());
            let norm_name = DisplayName::parse("display_name", name).map(|n| n.into_inner());
            let pw_ok = (8..=1024).contains(&password.chars().count());
            let dup = norm_email.as_ref().is_ok_and(|e| emails.get(e.as_str()).is_some_and(|n| *n > 1));
            let res = match field {
                UserField::Email | UserField::EmailLocalPart => {
                    judge(r, norm_email.is_ok(), "email", "email", norm_email.as_deref().unwrap_or(""), dup)
                }
                UserField::DisplayName => judge(
                    r,
                    norm_name.is_ok(),
                    "display_name",
                    "display_name",
                    norm_name.as_deref().unwrap_or(""),
                    false,
                ),
                UserField::Password => judge(r, pw_ok, "password", "email", email, false),
            };
            if let Err(e) = res {
                failures.push(format!("#{i} {} as {field:?}: {e}", short(s)));
            }
            if r.status == 201 {
                let id: Uuid = r.json.as_ref().unwrap()["id"].as_str().unwrap().parse().unwrap();
                let member = env
                    .scalar(&format!(
                        "SELECT count(*) FROM qisystem.tenant_memberships WHERE user_id = '{id}' AND tenant_id = '{}' AND role = 'viewer'",
                        f.a
                    ))
                    .await;
                let audited = env
                    .scalar(&format!(
                        "SELECT count(*) FROM core.audit_events WHERE action = 'user.create' AND target_id = '{id}'"
                    ))
                    .await;
                if (member, audited) != (1, 1) {
                    failures.push(format!("#{i} {field:?}: user {id} has {member} memberships, {audited} audit rows"));
                }
                if *field == UserField::Password {
                    created.push((*i, email.clone(), password.clone()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", fail_list("user-creation", &failures));
    // Each distinct accepted email exists exactly once.
    let distinct = emails.len() as i64;
    assert_eq!(env.scalar("SELECT count(*) FROM core.users").await, distinct, "users vs distinct valid emails");

    // Accepted passwords work, byte for byte (no trimming or normalisation).
    let reqs = created
        .iter()
        .map(|(_, email, pw)| {
            json_request("POST", "/v1/auth/login", Some(&json!({ "email": email, "password": pw })), None)
        })
        .collect();
    let answers = call_all(&env.state, reqs, WIDTH).await;
    let bad: Vec<String> = created
        .iter()
        .zip(&answers)
        .filter(|(_, r)| r.status != 200)
        .map(|((i, _, pw), r)| format!("#{i} {}: {} {}", short(pw), r.status, r.text))
        .collect();
    assert!(bad.is_empty(), "{}", fail_list("password sign-in", &bad));
}
