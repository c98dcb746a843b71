//! Checks of stored connections go through the connection's rate limit (decisions 0023, 0024): a
//! remote's 429 makes the connection back off for its Retry-After, and checks within that time
//! are answered `rate_limited` without calling the remote; so are checks over the type's limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use spine_core::connector::ConnectorType;
use spine_core::ids::TenantId;
use spine_core::jobs::ErrorClass;
use spine_core::vault::{Keyring, MasterKey};
use spine_pipeline::connectors::{self, CallOptions, Caller, CheckKind};
use spine_store::Store;
use spine_store::repos::connections::{self, NewConnection};
use spine_store::repos::rate_limits;

async fn busy(State(calls): State<Arc<AtomicU32>>) -> impl IntoResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")], "slow down")
}

#[tokio::test]
async fn a_429_makes_the_connection_back_off_without_further_calls() {
    let db = spine_testkit::test_db().await;
    let store = Store::new(db.pool.clone());
    let tenant = TenantId::new();
    sqlx::query(
        "INSERT INTO core.tenants (id, slug, display_name, integrations_enabled) VALUES ($1, 'rl', 'RL', true)",
    )
    .bind(tenant.as_uuid())
    .execute(&db.pool)
    .await
    .unwrap();
    let ring = Keyring::new(vec![MasterKey::generate("k1").unwrap()], "k1").unwrap();
    spine_store::vault::sync_keys(&store, &ring).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/people", get(busy)).with_state(calls.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let new = NewConnection {
        connector_type: ConnectorType::HttpJson,
        name: "busy",
        config: json!({"base_url": base, "path": "/v1/people", "auth": {"type": "bearer", "token": "t0k3n-abcdef"}}),
        metadata: json!({}),
        notes: None,
        created_by: "test",
    };
    let c = connections::create(&mut tx, &ring, new).await.unwrap();
    tx.commit().await.unwrap();
    let caller = Caller { actor: "test:limits", request_id: None };

    let (d, _) =
        connectors::check_connection(&store, &ring, tenant, &c, CheckKind::Health, caller, CallOptions::default())
            .await
            .unwrap();
    assert_eq!(
        (d.error_class, d.http_status, d.retry_after_secs),
        (Some(ErrorClass::RateLimited), Some(429), Some(120))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Within the back-off: answered here, the remote is not called, the history still records it.
    let (d, row) =
        connectors::check_connection(&store, &ring, tenant, &c, CheckKind::Test, caller, CallOptions::default())
            .await
            .unwrap();
    assert_eq!((d.error_class, d.http_status), (Some(ErrorClass::RateLimited), None));
    let wait = d.retry_after_secs.unwrap();
    assert!((100..=120).contains(&wait), "{wait}");
    assert!(d.message.contains("not called"), "{}", d.message);
    assert_eq!(row.error_class.as_deref(), Some("rate_limited"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no second call during the back-off");

    let mut tx = store.tenant_tx(tenant).await.unwrap();
    let s = rate_limits::stats(&mut tx, c.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!((s.admitted_calls, s.hits, s.remote_429s), (1, 1, 1));
    assert!(s.blocked_until.is_some());
}
