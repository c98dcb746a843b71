//! Tenant administration (allowlist flag, suspension) and the request timeout.

mod common;

use std::time::Duration;

use common::Env;
use serde_json::json;
use spine_api::ApiConfig;
use spine_core::auth::Scope;

#[tokio::test]
async fn platform_can_toggle_integrations_and_suspend_a_tenant() {
    let env = Env::new().await;
    let t = env.seed_tenant("acme").await;
    let service = env.seed_service_key(false).await;
    let (admin, _) = env.seed_api_key(t, &[Scope::Admin]).await;

    // A tenant's own admin may not change its tenant row.
    let r = env.send("PATCH", "/v1/tenants/acme", Some(&json!({"integrations_enabled": true})), Some(&admin)).await;
    r.expect(403, Some("forbidden"), "tenant admin");

    let r = env.send("PATCH", "/v1/tenants/acme", Some(&json!({"integrations_enabled": true})), Some(&service)).await;
    r.expect(200, None, "enable integrations");
    assert_eq!(r.json.as_ref().unwrap()["integrations_enabled"], true);
    let r = env.send("GET", "/v1/tenant", None, Some(&admin)).await;
    assert_eq!(r.json.as_ref().unwrap()["integrations_enabled"], true);

    let r = env.send("PATCH", &format!("/v1/tenants/{t}"), Some(&json!({"status": "suspended"})), Some(&service)).await;
    r.expect(200, None, "suspend");
    let r = env.send("GET", "/v1/whoami", None, Some(&admin)).await;
    r.expect(403, Some("tenant_suspended"), "suspended tenant's key");

    let r = env.send("PATCH", "/v1/tenants/acme", Some(&json!({"status": "active"})), Some(&service)).await;
    r.expect(200, None, "reactivate");
    env.send("GET", "/v1/whoami", None, Some(&admin)).await.expect(200, None, "key works again");

    for (body, what) in [
        (json!({"status": "deleted"}), "unknown status"),
        (json!({"display_name": ""}), "empty name"),
        (json!({"slug": "renamed"}), "slug is not changeable"),
    ] {
        let r = env.send("PATCH", "/v1/tenants/acme", Some(&body), Some(&service)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        r.error_shape().unwrap();
    }
    env.send("PATCH", "/v1/tenants/nope", Some(&json!({})), Some(&service)).await.expect(
        404,
        Some("not_found"),
        "unknown",
    );
    let audited = env.scalar("SELECT count(*) FROM core.audit_events WHERE action = 'tenant.update'").await;
    assert_eq!(audited, 3);
}

#[tokio::test]
async fn slow_requests_get_the_timeout_error() {
    let env = Env::with_config(ApiConfig { request_timeout: Duration::from_millis(1), ..ApiConfig::default() }).await;
    // Sign-in verifies an argon2 hash (tens of milliseconds), far past a 1 ms limit.
    let body = json!({"email": "nobody@example.org", "password": "whatever-password"});
    let r = env.send("POST", "/v1/auth/login", Some(&body), None).await;
    r.expect(503, Some("timeout"), "login with a 1 ms timeout");
    assert!(r.request_id.is_some());
}
