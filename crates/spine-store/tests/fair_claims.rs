//! Claims are fair across tenants (decision 0025, issue 5 item 6): a tenant with a large backlog
//! does not starve another tenant's jobs, while within a tenant priority and due order hold.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use spine_core::ids::TenantId;
use spine_store::Store;
use spine_store::queue::{self, NewJob};

const LEASE: Duration = Duration::from_secs(30);

async fn tenant(db: &spine_testkit::TestDb, slug: &str) -> TenantId {
    let t = TenantId::new();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, $2)")
        .bind(t.as_uuid())
        .bind(slug)
        .execute(&db.pool)
        .await
        .unwrap();
    t
}

async fn put_many(store: &Store, t: TenantId, n: usize, priority: i16) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            let mut j = NewJob::new(t, "work", json!({ "i": i, "p": priority }));
            j.priority = priority;
            j
        })
        .collect();
    let mut tx = store.tenant_tx(t).await.unwrap();
    queue::enqueue_many(tx.conn(), &jobs).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_backlog_does_not_starve_other_tenants() {
    let db = spine_testkit::test_db().await;
    let store = Store::new(db.pool.clone());
    let (big, small, tiny) = (tenant(&db, "big").await, tenant(&db, "small").await, tenant(&db, "tiny").await);
    put_many(&store, big, 2_000, 0).await;
    put_many(&store, small, 30, 0).await;
    put_many(&store, tiny, 2, 0).await;

    let claimed = queue::claim(&db.pool, "w", None, 30, LEASE).await.unwrap();
    let mut per: HashMap<uuid::Uuid, usize> = HashMap::new();
    for j in &claimed {
        *per.entry(j.tenant_id).or_default() += 1;
    }
    // Shares of ceil(30 / 3) = 10: the tiny tenant's 2 jobs, 10 each of the others.
    assert_eq!(per.get(&tiny.as_uuid()), Some(&2));
    assert_eq!(per.get(&small.as_uuid()), Some(&10));
    assert_eq!(per.get(&big.as_uuid()), Some(&10));
    // Within a tenant: due order (the first ten enqueued).
    let mut firsts: Vec<i64> =
        claimed.iter().filter(|j| j.tenant_id == big.as_uuid()).map(|j| j.payload["i"].as_i64().unwrap()).collect();
    firsts.sort_unstable();
    assert_eq!(firsts, (0..10).collect::<Vec<_>>());

    // Drained claim after claim, the small tenant finishes long before the big one.
    let mut small_left = 20;
    let mut claims = 1;
    while small_left > 0 {
        let c = queue::claim(&db.pool, "w", None, 30, LEASE).await.unwrap();
        small_left -= c.iter().filter(|j| j.tenant_id == small.as_uuid()).count();
        claims += 1;
        assert!(claims <= 3, "the small tenant waited behind the backlog");
    }
}

#[tokio::test]
async fn priority_orders_jobs_within_a_tenant() {
    let db = spine_testkit::test_db().await;
    let store = Store::new(db.pool.clone());
    let (a, b) = (tenant(&db, "a").await, tenant(&db, "b").await);
    put_many(&store, a, 50, 0).await;
    put_many(&store, a, 5, 9).await;
    put_many(&store, b, 50, 0).await;
    let claimed = queue::claim(&db.pool, "w", None, 10, LEASE).await.unwrap();
    let a_jobs: Vec<i64> =
        claimed.iter().filter(|j| j.tenant_id == a.as_uuid()).map(|j| j.payload["p"].as_i64().unwrap()).collect();
    assert_eq!(a_jobs, vec![9; 5], "tenant a's share goes to its high-priority jobs first");
    assert_eq!(claimed.iter().filter(|j| j.tenant_id == b.as_uuid()).count(), 5);
}
