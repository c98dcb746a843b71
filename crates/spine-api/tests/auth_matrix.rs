//! The auth matrix: every route × every kind of credential → the expected status (and, for a
//! 4xx, the error code and body shape). One table, every mismatch printed before failing.

mod common;

use common::{Env, session_token};
use serde_json::{Value, json};
use spine_core::auth::{Role, Scope, SessionSigner};
use spine_core::secret::Secret;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cred {
    Absent,
    Garbage,
    UnknownKey,
    Service,
    RevokedService,
    AdminKey,
    ReadKey,
    ExpiredKey,
    RevokedKey,
    SuspendedKey,
    OwnerJwt,
    ViewerJwt,
    ExpiredJwt,
    WrongSigJwt,
    PlatformJwt,
}

const ALL_CREDS: [Cred; 15] = [
    Cred::Absent,
    Cred::Garbage,
    Cred::UnknownKey,
    Cred::Service,
    Cred::RevokedService,
    Cred::AdminKey,
    Cred::ReadKey,
    Cred::ExpiredKey,
    Cred::RevokedKey,
    Cred::SuspendedKey,
    Cred::OwnerJwt,
    Cred::ViewerJwt,
    Cred::ExpiredJwt,
    Cred::WrongSigJwt,
    Cred::PlatformJwt,
];

/// Who may use a route.
#[derive(Clone, Copy, Debug)]
enum Access {
    /// No credential needed; any Authorization header is ignored.
    Public,
    /// Service role or platform admin.
    Platform,
    /// `admin` scope in a tenant: admin API key or owner session.
    TenantAdmin,
    /// Any credential acting in a tenant.
    AnyTenant,
    /// Any valid credential.
    AnyValid,
}

struct Row {
    method: &'static str,
    path: String,
    body: Option<Value>,
    cred: Cred,
    status: u16,
    code: Option<&'static str>,
}

struct Creds {
    tokens: Vec<(Cred, Option<String>)>,
}

impl Creds {
    fn get(&self, c: Cred) -> Option<&str> {
        self.tokens.iter().find(|(k, _)| *k == c).and_then(|(_, t)| t.as_deref())
    }
}

const OWNER_EMAIL: &str = "owner@a.example";
const OWNER_PW: &str = "owner password 1";

/// Tenant A (with its admin, reader, expired, revoked keys and owner/viewer users), suspended
/// tenant S, service keys, a platform admin, and a victim key for DELETE.
async fn fixtures(env: &Env) -> (Creds, Uuid) {
    let a = env.seed_tenant("tenant-a").await;
    let s = env.seed_tenant("tenant-s").await;
    let (admin_key, _) = env.seed_api_key(a, &[Scope::Admin]).await;
    let (read_key, _) = env.seed_api_key(a, &[Scope::RecordsRead]).await;
    let expired_key = env.seed_expired_api_key(a).await;
    let (revoked_key, revoked_id) = env.seed_api_key(a, &[Scope::Admin]).await;
    env.revoke_api_key(a, revoked_id).await;
    let (suspended_key, _) = env.seed_api_key(s, &[Scope::Admin]).await;
    env.suspend_tenant(s).await;
    let (_, victim) = env.seed_api_key(a, &[Scope::RecordsRead]).await;
    let service = env.seed_service_key(false).await;
    let revoked_service = env.seed_service_key(true).await;
    let owner = env.seed_user(OWNER_EMAIL, OWNER_PW, false, Some((a, Role::Owner))).await;
    env.seed_user("viewer@a.example", "viewer password 1", false, Some((a, Role::Viewer))).await;
    env.seed_user("ops@platform.example", "platform password 1", true, None).await;
    let owner_jwt = env.login(OWNER_EMAIL, OWNER_PW).await;
    let viewer_jwt = env.login("viewer@a.example", "viewer password 1").await;
    let platform_jwt = env.login("ops@platform.example", "platform password 1").await;
    let expired_jwt = session_token(&env.state.signer, owner, Some(a), -60);
    let other = SessionSigner::new(Secret::new(b"some-other-signing-key-0123456789".to_vec()));
    let wrong_sig_jwt = session_token(&other, owner, Some(a), 3600);
    let tokens = vec![
        (Cred::Absent, None),
        (Cred::Garbage, Some("garbage".to_owned())),
        (Cred::UnknownKey, Some(format!("sak_{}_{}", "abcdefghijkm", "A".repeat(43)))),
        (Cred::Service, Some(service)),
        (Cred::RevokedService, Some(revoked_service)),
        (Cred::AdminKey, Some(admin_key)),
        (Cred::ReadKey, Some(read_key)),
        (Cred::ExpiredKey, Some(expired_key)),
        (Cred::RevokedKey, Some(revoked_key)),
        (Cred::SuspendedKey, Some(suspended_key)),
        (Cred::OwnerJwt, Some(owner_jwt)),
        (Cred::ViewerJwt, Some(viewer_jwt)),
        (Cred::ExpiredJwt, Some(expired_jwt)),
        (Cred::WrongSigJwt, Some(wrong_sig_jwt)),
        (Cred::PlatformJwt, Some(platform_jwt)),
    ];
    (Creds { tokens }, victim)
}

/// The expected (status, code) for a credential on a route of the given access class, where
/// `ok` is the route's success status.
fn expected(access: Access, ok: u16, cred: Cred) -> (u16, Option<&'static str>) {
    use Cred::*;
    if let Access::Public = access {
        return (ok, None);
    }
    match cred {
        Absent | Garbage | UnknownKey | RevokedService | ExpiredKey | RevokedKey | ExpiredJwt | WrongSigJwt => {
            return (401, Some("unauthenticated"));
        }
        SuspendedKey => return (403, Some("tenant_suspended")),
        _ => {}
    }
    let allowed = match access {
        Access::Public | Access::AnyValid => true,
        Access::Platform => matches!(cred, Service | PlatformJwt),
        Access::TenantAdmin => matches!(cred, AdminKey | OwnerJwt),
        Access::AnyTenant => matches!(cred, AdminKey | ReadKey | OwnerJwt | ViewerJwt),
    };
    if allowed { (ok, None) } else { (403, Some("forbidden")) }
}

fn rows(victim: Uuid) -> Vec<Row> {
    let mut n = 0u32;
    let mut rows = Vec::new();
    for cred in ALL_CREDS {
        let (t, u) = (n + 1, n + 2);
        n += 2;
        let routes: Vec<(&'static str, String, Option<Value>, Access, u16)> = vec![
            ("GET", "/healthz".into(), None, Access::Public, 200),
            ("GET", "/readyz".into(), None, Access::Public, 200),
            ("GET", "/openapi.json".into(), None, Access::Public, 200),
            (
                "POST",
                "/v1/tenants".into(),
                Some(json!({ "slug": format!("matrix-{t}"), "display_name": "Matrix" })),
                Access::Platform,
                201,
            ),
            ("GET", "/v1/tenants".into(), None, Access::Platform, 200),
            (
                "POST",
                "/v1/tenants/tenant-a/keys".into(),
                Some(json!({ "name": "matrix", "scopes": ["records:read"] })),
                Access::Platform,
                201,
            ),
            ("GET", "/v1/tenant".into(), None, Access::AnyTenant, 200),
            (
                "POST",
                "/v1/auth/login".into(),
                Some(json!({ "email": OWNER_EMAIL, "password": OWNER_PW })),
                Access::Public,
                200,
            ),
            (
                "POST",
                "/v1/users".into(),
                Some(json!({
                    "email": format!("m{u}@a.example"),
                    "display_name": "Matrix User",
                    "password": "matrix password",
                    "role": "viewer",
                })),
                Access::TenantAdmin,
                201,
            ),
            ("GET", "/v1/users".into(), None, Access::TenantAdmin, 200),
            (
                "POST",
                "/v1/keys".into(),
                Some(json!({ "name": "matrix", "scopes": ["records:read"] })),
                Access::TenantAdmin,
                201,
            ),
            ("GET", "/v1/keys".into(), None, Access::TenantAdmin, 200),
            ("DELETE", format!("/v1/keys/{victim}"), None, Access::TenantAdmin, 200),
            ("GET", "/v1/whoami".into(), None, Access::AnyValid, 200),
            ("GET", "/v1/registry/schemas".into(), None, Access::AnyValid, 200),
            ("GET", "/v1/registry/tables".into(), None, Access::AnyValid, 200),
            ("GET", "/v1/registry/fields".into(), None, Access::AnyValid, 200),
        ];
        for (method, path, body, access, ok) in routes {
            let (status, code) = expected(access, ok, cred);
            rows.push(Row { method, path, body, cred, status, code });
        }
    }
    rows
}

#[tokio::test]
async fn auth_matrix() {
    let env = Env::new().await;
    let (creds, victim) = fixtures(&env).await;
    let rows = rows(victim);
    assert_eq!(rows.len(), 17 * ALL_CREDS.len());
    let mut mismatches = Vec::new();
    for row in &rows {
        let r = env.send(row.method, &row.path, row.body.as_ref(), creds.get(row.cred)).await;
        let label = format!("{:<6} {:<28} {:<14?}", row.method, row.path, row.cred);
        let mut problems = Vec::new();
        if r.status != row.status {
            problems.push(format!("status {} (expected {})", r.status, row.status));
        }
        if r.status >= 400 {
            if let Err(e) = r.error_shape() {
                problems.push(e);
            }
        } else if r.json.is_none() {
            problems.push("2xx body is not JSON".to_owned());
        }
        if let Some(code) = row.code
            && r.code() != Some(code)
        {
            problems.push(format!("code {:?} (expected {code})", r.code()));
        }
        if r.request_id.is_none() {
            problems.push("no x-request-id header".to_owned());
        }
        if !problems.is_empty() {
            mismatches.push(format!(
                "{label} -> {}  [{}]",
                problems.join("; "),
                r.text.chars().take(160).collect::<String>()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} auth-matrix rows mismatched:\n{}",
        mismatches.len(),
        rows.len(),
        mismatches.join("\n")
    );
}

/// whoami tells the three principal kinds apart and reports the right tenant and scopes.
#[tokio::test]
async fn whoami_describes_each_principal() {
    let env = Env::new().await;
    let (creds, _) = fixtures(&env).await;
    let a: Uuid =
        sqlx::query_scalar("SELECT id FROM core.tenants WHERE slug = 'tenant-a'").fetch_one(env.pool()).await.unwrap();
    let cases = [
        (Cred::Service, "service", None, vec![], true),
        (Cred::AdminKey, "api_key", Some(a), vec!["admin"], false),
        (Cred::ReadKey, "api_key", Some(a), vec!["records:read"], false),
        (Cred::OwnerJwt, "user", Some(a), vec!["admin"], false),
        (Cred::ViewerJwt, "user", Some(a), vec!["records:read"], false),
        (Cred::PlatformJwt, "user", None, vec![], true),
    ];
    for (cred, kind, tenant, scopes, platform) in cases {
        let r = env.send("GET", "/v1/whoami", None, creds.get(cred)).await;
        r.expect(200, None, &format!("whoami {cred:?}"));
        let j = r.json.unwrap();
        assert_eq!(j["kind"], kind, "{cred:?}: {j}");
        assert_eq!(j["tenant_id"], tenant.map_or(Value::Null, |t| json!(t)), "{cred:?}: {j}");
        assert_eq!(j["platform_admin"], platform, "{cred:?}: {j}");
        let got: Vec<&str> = j["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        // admin implies every scope, so an admin credential lists all of them.
        if scopes.contains(&"admin") {
            assert_eq!(got.len(), Scope::ALL.len(), "{cred:?}: {j}");
        } else {
            assert_eq!(got, scopes, "{cred:?}: {j}");
        }
    }
}
