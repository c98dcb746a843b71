//! The jobs API: a tenant's jobs:admin credential sees and acts on its own jobs only; the service
//! role sees all. A failing job is visible with every attempt and can be requeued.

mod common;

use chrono::Utc;
use common::Env;
use serde_json::json;
use spine_core::auth::Scope;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_store::queue::{self, Finish, Finished, NewJob};
use uuid::Uuid;

async fn enqueue(env: &Env, tenant: Uuid, kind: &str) -> Uuid {
    let mut tx = env.store().tenant_tx(TenantId(tenant)).await.unwrap();
    let id = queue::enqueue(tx.conn(), &NewJob::new(TenantId(tenant), kind, json!({"type": kind}))).await.unwrap().id();
    tx.commit().await.unwrap();
    id
}

/// Claims everything due and quarantines it with an `invalid` error.
async fn quarantine_all(env: &Env) {
    let jobs = queue::claim(env.pool(), "test-worker", None, 100, std::time::Duration::from_secs(30)).await.unwrap();
    let done: Vec<Finished> = jobs
        .iter()
        .map(|j| Finished {
            id: j.id,
            attempt: j.attempts,
            started_at: j.started_at,
            finished_at: Utc::now(),
            outcome: Finish::Quarantined { class: ErrorClass::Invalid, message: "bad response from remote".into() },
        })
        .collect();
    queue::finish(env.pool(), "test-worker", &done).await.unwrap();
}

#[tokio::test]
async fn jobs_are_scoped_visible_and_requeueable() {
    let env = Env::new().await;
    let (a, b) = (env.seed_tenant("ja").await, env.seed_tenant("jb").await);
    let (a_admin, _) = env.seed_api_key(a, &[Scope::JobsAdmin]).await;
    let (a_reader, _) = env.seed_api_key(a, &[Scope::RecordsRead]).await;
    let service = env.seed_service_key(false).await;
    let a_job = enqueue(&env, a, "sync.feed").await;
    let b_job = enqueue(&env, b, "sync.feed").await;
    quarantine_all(&env).await;
    let a_queued = enqueue(&env, a, "sync.mail").await;

    env.send("GET", "/v1/jobs", None, Some(&a_reader)).await.expect(403, Some("forbidden"), "records:read only");
    let r = env.send("GET", "/v1/jobs", None, Some(&a_admin)).await;
    r.expect(200, None, "list");
    let ids: Vec<String> =
        r.json.unwrap().as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&b_job.to_string()), "tenant A sees B's job");

    let r = env.send("GET", "/v1/jobs?state=quarantined", None, Some(&service)).await;
    r.expect(200, None, "service list");
    assert_eq!(r.json.unwrap().as_array().unwrap().len(), 2);
    let r = env.send("GET", &format!("/v1/jobs?tenant={b}"), None, Some(&service)).await;
    assert_eq!(r.json.unwrap().as_array().unwrap().len(), 1);

    let r = env.send("GET", &format!("/v1/jobs/{a_job}"), None, Some(&a_admin)).await;
    r.expect(200, None, "show");
    let j = r.json.unwrap();
    assert_eq!((j["state"].as_str(), j["last_error_class"].as_str()), (Some("quarantined"), Some("invalid")));
    assert_eq!(j["attempts"][0]["outcome"], "quarantined");
    assert_eq!(j["attempts"][0]["error_message"], "bad response from remote");
    env.send("GET", &format!("/v1/jobs/{b_job}"), None, Some(&a_admin)).await.expect(404, Some("not_found"), "B's job");

    // A cannot requeue B's job; requeueing its own works once.
    let r = env.send("POST", &format!("/v1/jobs/{b_job}/requeue"), None, Some(&a_admin)).await;
    assert_eq!(r.json.unwrap()["affected"], 0);
    let r = env.send("POST", &format!("/v1/jobs/{a_job}/requeue"), None, Some(&a_admin)).await;
    r.expect(200, None, "requeue");
    assert_eq!(r.json.unwrap()["affected"], 1);
    let r = env.send("GET", &format!("/v1/jobs/{a_job}"), None, Some(&a_admin)).await;
    let j = r.json.unwrap();
    assert_eq!((j["state"].as_str(), j["attempts"].as_array().unwrap().len()), (Some("queued"), 1));

    // Bulk: cancel every queued sync.mail job of A.
    let body = json!({"state": "queued", "kind": "sync.mail"});
    let r = env.send("POST", "/v1/jobs/actions/cancel", Some(&body), Some(&a_admin)).await;
    r.expect(200, None, "bulk cancel");
    assert_eq!(r.json.unwrap()["ids"], json!([a_queued]));

    let r = env.send("GET", "/v1/jobs/stats", None, Some(&a_admin)).await;
    r.expect(200, None, "stats");
    let stats = r.json.unwrap();
    assert!(stats.as_array().unwrap().iter().all(|s| s["jobs"].as_i64().unwrap() > 0));

    // Prometheus text: depth per state and kind across tenants, no tenant ids.
    let r = env.send("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("spine_jobs{state=\"quarantined\",kind=\"sync.feed\"} 1"), "{}", r.text);
    assert!(r.text.contains("spine_jobs{state=\"cancelled\",kind=\"sync.mail\"} 1"), "{}", r.text);
    assert!(!r.text.contains(&a.to_string()) && !r.text.contains(&b.to_string()));

    for (method, path) in [
        ("GET", "/v1/jobs?state=exploded".to_owned()),
        ("GET", "/v1/jobs?older_than_secs=-5".to_owned()),
        ("POST", format!("/v1/jobs/{a_job}/explode")),
        ("GET", "/v1/jobs/not-a-uuid".to_owned()),
    ] {
        let r = env.send(method, &path, None, Some(&a_admin)).await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        r.error_shape().unwrap();
    }
}
