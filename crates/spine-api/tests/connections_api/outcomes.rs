//! What the runtime did to a connection, over the API (decision 0022, issue 5 item 7): the failure
//! policy is shown and can be changed (with field errors), a job's auth failure appears as a
//! status change by `job:<id>` in `/events`, people's enable/disable too, and `/rate-limit` shows
//! the limiter's counters (decision 0024). Another tenant sees none of it.

use chrono::Utc;
use serde_json::json;
use spine_core::auth::Scope;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_store::queue::{self, Finish, Finished, NewJob};
use uuid::Uuid;

use super::{CANARY, bearer_config, env, no_canary, tenant};

#[tokio::test]
async fn failure_policy_events_and_rate_limit_counters() {
    let env = env().await;
    let (tid, key) = tenant(&env, "acme", true, &[Scope::ConnectionsAdmin]).await;
    let (_, other) = tenant(&env, "beta", true, &[Scope::Admin]).await;
    let body = json!({"connector_type": "http_json", "name": "crm", "config": bearer_config(CANARY)});
    let r = env.send("POST", "/v1/connections", Some(&body), Some(&key)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let c = r.json.unwrap();
    assert_eq!((c["degrade_after_failures"].as_i64(), c["disable_after_secs"].as_i64()), (Some(3), Some(86_400)));
    assert_eq!(c["consecutive_failures"], 0);
    let id: Uuid = c["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/v1/connections/{id}");

    // The policy: field errors for out-of-range values, then a change.
    let bad = json!({"degrade_after_failures": 0, "disable_after_secs": -5});
    let r = env.send("PATCH", &path, Some(&bad), Some(&key)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let fields: Vec<&str> = r.json.as_ref().unwrap()["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["degrade_after_failures", "disable_after_secs"]);
    let r = env
        .send("PATCH", &path, Some(&json!({"degrade_after_failures": 2, "disable_after_secs": 600})), Some(&key))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.json.as_ref().unwrap()["degrade_after_failures"].as_i64(),
            r.json.as_ref().unwrap()["disable_after_secs"].as_i64()
        ),
        (Some(2), Some(600))
    );

    // A job's auth failure disables the connection: the event names the job.
    let tenant_id = TenantId::from(tid);
    let mut job = NewJob::new(tenant_id, "crm.pull", json!({}));
    job.connection_id = Some(id);
    let mut tx = env.store().tenant_tx(tenant_id).await.unwrap();
    let jid = queue::enqueue(tx.conn(), &job).await.unwrap().id();
    tx.commit().await.unwrap();
    let j =
        queue::claim_tenant(env.pool(), "w", tid, None, 1, std::time::Duration::from_secs(30)).await.unwrap().remove(0);
    let outcome = Finish::Quarantined { class: ErrorClass::Auth, message: "401: token revoked".into() };
    let f = Finished { id: jid, attempt: j.attempts, started_at: j.started_at, finished_at: Utc::now(), outcome };
    queue::finish(env.pool(), "w", &[f]).await.unwrap();
    let r = env.send("GET", &path, None, Some(&key)).await;
    let c = r.json.unwrap();
    assert_eq!((c["status"].as_str(), c["is_active"].as_bool()), (Some("disabled"), Some(false)));
    assert_eq!((c["consecutive_failures"].as_i64(), c["last_error_class"].as_str()), (Some(1), Some("auth")));

    let r = env.send("POST", &format!("{path}/enable"), None, Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = env.send("GET", &format!("{path}/events"), None, Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    no_canary(&r);
    let events = r.json.unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0]["from_status"].as_str(), events[0]["to_status"].as_str()),
        (Some("disabled"), Some("active"))
    );
    assert!(events[0]["actor"].as_str().unwrap().starts_with("api_key:"), "{:?}", events[0]);
    assert_eq!(
        (events[1]["from_status"].as_str(), events[1]["to_status"].as_str()),
        (Some("active"), Some("disabled"))
    );
    assert_eq!(events[1]["actor"].as_str(), Some(format!("job:{jid}").as_str()));
    assert!(events[1]["reason"].as_str().unwrap().contains("token revoked"));
    let r = env.send("GET", &format!("{path}/events?limit=0"), None, Some(&key)).await;
    assert_eq!(r.status, 400, "{}", r.text);

    // The limiter's counters: zero before any limited call, then counted.
    let r = env.send("GET", &format!("{path}/rate-limit"), None, Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json.unwrap();
    assert_eq!(
        (v["limit_per_minute"].as_i64(), v["hits"].as_i64(), v["admitted_calls"].as_i64()),
        (Some(60), Some(0), Some(0))
    );
    let limiter = spine_pipeline::ratelimit::RateLimiter::new(env.store().clone());
    limiter.check(tenant_id, id, Some(1)).await.unwrap();
    assert!(limiter.check(tenant_id, id, Some(1)).await.unwrap_err().deferred);
    let v = env.send("GET", &format!("{path}/rate-limit"), None, Some(&key)).await.json.unwrap();
    assert_eq!((v["calls_last_minute"].as_i64(), v["hits"].as_i64()), (Some(1), Some(1)));

    // Another tenant: 404 on both.
    for p in [format!("{path}/events"), format!("{path}/rate-limit")] {
        assert_eq!(env.send("GET", &p, None, Some(&other)).await.status, 404, "{p}");
    }
}
