//! Schedules over the API: validation, pause/resume, trigger now, tenant confinement.

mod common;

use common::Env;
use serde_json::json;
use spine_core::auth::Scope;

#[tokio::test]
async fn schedules_can_be_created_paused_resumed_triggered_and_deleted() {
    let env = Env::new().await;
    let (a, b) = (env.seed_tenant("sa").await, env.seed_tenant("sb").await);
    let (a_admin, _) = env.seed_api_key(a, &[Scope::JobsAdmin]).await;
    let (b_admin, _) = env.seed_api_key(b, &[Scope::JobsAdmin]).await;
    let service = env.seed_service_key(false).await;

    for (body, field) in [
        (json!({"name": "n", "kind": "sync.feed", "cron_expression": "61 * * * *"}), "cron_expression"),
        (
            json!({"name": "n", "kind": "sync.feed", "cron_expression": "0 * * * *", "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (json!({"name": "n", "kind": "Sync Feed", "cron_expression": "0 * * * *"}), "kind"),
        (json!({"name": "", "kind": "sync.feed", "cron_expression": "0 * * * *"}), "name"),
    ] {
        let r = env.send("POST", "/v1/schedules", Some(&body), Some(&a_admin)).await;
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert!(r.text.contains(field), "{field}: {}", r.text);
    }
    let body = json!({"name": "hourly feed", "kind": "sync.feed", "cron_expression": "0 * * * *",
                      "timezone": "Europe/Berlin", "catch_up": "run_once", "payload": {"feed": 1}});
    let r = env.send("POST", "/v1/schedules", Some(&body), Some(&a_admin)).await;
    r.expect(201, None, "create");
    let s = r.json.unwrap();
    let id = s["id"].as_str().unwrap().to_owned();
    assert!(s["next_run_at"].is_string());
    env.send("POST", "/v1/schedules", Some(&body), Some(&a_admin)).await.expect(409, Some("conflict"), "same name");
    env.send("POST", "/v1/schedules", Some(&body), Some(&service)).await.expect(
        403,
        Some("forbidden"),
        "service create",
    );

    let r = env.send("POST", &format!("/v1/schedules/{id}/pause"), None, Some(&a_admin)).await;
    r.expect(200, None, "pause");
    assert_eq!(r.json.unwrap()["enabled"], false);
    let r = env.send("POST", &format!("/v1/schedules/{id}/resume"), None, Some(&a_admin)).await;
    assert_eq!(r.json.unwrap()["enabled"], true);
    let r = env.send("POST", &format!("/v1/schedules/{id}/trigger"), None, Some(&a_admin)).await;
    r.expect(200, None, "trigger");
    let job = r.json.unwrap()["triggered_job_id"].as_str().unwrap().to_owned();
    let r = env.send("GET", &format!("/v1/jobs/{job}"), None, Some(&a_admin)).await;
    let j = r.json.unwrap();
    assert_eq!((j["schedule_id"].as_str(), j["kind"].as_str()), (Some(id.as_str()), Some("sync.feed")));
    assert_eq!(j["payload"], json!({"feed": 1}));

    env.send("GET", &format!("/v1/schedules/{id}"), None, Some(&b_admin)).await.expect(404, Some("not_found"), "B");
    env.send("POST", &format!("/v1/schedules/{id}/pause"), None, Some(&b_admin)).await.expect(
        404,
        Some("not_found"),
        "B",
    );
    let r = env.send("GET", "/v1/schedules", None, Some(&service)).await;
    assert_eq!(r.json.unwrap().as_array().unwrap().len(), 1);
    let r = env.send("GET", "/v1/schedules", None, Some(&b_admin)).await;
    assert_eq!(r.json.unwrap().as_array().unwrap().len(), 0);
    let r = env.send("DELETE", &format!("/v1/schedules/{id}"), None, Some(&a_admin)).await;
    assert_eq!(r.status, 204);
    env.send("GET", &format!("/v1/schedules/{id}"), None, Some(&a_admin)).await.expect(404, Some("not_found"), "gone");
}
