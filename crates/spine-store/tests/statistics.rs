//! The keeper of planner statistics (decision 0029) on a real PostgreSQL: a foreign-key check
//! planned while `qinexus.files` was nearly empty keeps a plan that reads the tenant's whole
//! index; one pass of `analyze_grown` after the table grew replaces it, and a table that has not
//! grown since is left alone.

use spine_store::statistics;
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

const TENANT: Uuid = Uuid::from_u128(1);
const SOURCE: Uuid = Uuid::from_u128(2);

/// The statement PostgreSQL's foreign-key trigger runs for a row that references a file.
const FK_CHECK: &str = "PREPARE fk(uuid, uuid) AS SELECT 1 FROM ONLY qinexus.files x \
                        WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE OF x";

async fn add_files(conn: &mut PgConnection, prefix: &str, n: i32) {
    sqlx::query(
        "INSERT INTO qinexus.files (id, tenant_id, source_id, original_name, storage_name, content_sha256, \
                                    size_bytes, media_type, created_by) \
         SELECT gen_random_uuid(), $1, $2, $3 || g, $3 || g, repeat('a', 64), 1, 'application/octet-stream', 'test' \
         FROM generate_series(1, $4) g",
    )
    .bind(TENANT)
    .bind(SOURCE)
    .bind(prefix)
    .bind(n)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// The plan the prepared check runs with now.
async fn fk_plan(conn: &mut PgConnection) -> String {
    let lines: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE fk('{TENANT}', '{}')", Uuid::new_v4())))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    lines.join("\n")
}

/// Makes the connection's table counters visible to other sessions now, not within a second.
async fn flush_counters(conn: &mut PgConnection) {
    conn.execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    conn.execute("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_grown_table_is_analysed_and_plans_made_when_it_was_small_are_replaced() {
    let db = spine_testkit::test_db().await;
    spine_testkit::add_tenant(&db.pool, TENANT, "stats").await;
    sqlx::query(
        "INSERT INTO qinexus.sources (id, tenant_id, source_key, source_kind, display_name, created_by) \
         VALUES ($1, $2, 'upload', 'upload', 'Uploads', 'test')",
    )
    .bind(SOURCE)
    .bind(TENANT)
    .execute(&db.pool)
    .await
    .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    add_files(&mut conn, "first-", 20).await;
    conn.execute(FK_CHECK).await.unwrap();
    // Past five runs PostgreSQL settles on a generic plan, made for a table of 20 rows.
    for _ in 0..6 {
        let _ = fk_plan(&mut conn).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("EXECUTE fk('{TENANT}', '{}')", Uuid::new_v4())))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    add_files(&mut conn, "more-", 3000).await;
    flush_counters(&mut conn).await;
    let stuck = fk_plan(&mut conn).await;
    assert!(
        stuck.contains("Filter: (id = $2)"),
        "expected the small-table plan (the id only filtered) before the analysis, got:\n{stuck}"
    );

    let analysed = statistics::analyze_grown(&db.pool).await.unwrap();
    assert!(analysed.iter().any(|t| t == "qinexus.files"), "analysed: {analysed:?}");
    let reltuples: f32 = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'qinexus.files'::regclass")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(reltuples, 3020.0);
    let replanned = fk_plan(&mut conn).await;
    assert!(
        replanned.contains("Index Cond: ((tenant_id = $1) AND (id = $2))"),
        "expected both keys in the index condition after the analysis, got:\n{replanned}"
    );

    // Nothing grew since: the next pass leaves the table alone.
    flush_counters(&mut conn).await;
    let again = statistics::analyze_grown(&db.pool).await.unwrap();
    assert!(!again.iter().any(|t| t == "qinexus.files"), "analysed again: {again:?}");
    // Growth below the table's own size does not count either; doubling does.
    add_files(&mut conn, "few-", 100).await;
    flush_counters(&mut conn).await;
    assert!(!statistics::analyze_grown(&db.pool).await.unwrap().iter().any(|t| t == "qinexus.files"));
    add_files(&mut conn, "double-", 3000).await;
    flush_counters(&mut conn).await;
    assert!(statistics::analyze_grown(&db.pool).await.unwrap().iter().any(|t| t == "qinexus.files"));
}

#[tokio::test]
async fn only_one_keeper_analyses_at_a_time() {
    let db = spine_testkit::test_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    conn.execute("INSERT INTO core.tenants (id, slug, display_name) SELECT gen_random_uuid(), 't' || g, 'T' FROM generate_series(1, 100) g")
        .await
        .unwrap();
    flush_counters(&mut conn).await;
    drop(conn);
    let mut other = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('spine.statistics', 0))")
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(statistics::analyze_grown(&db.pool).await.unwrap(), Vec::<String>::new());
    other.rollback().await.unwrap();
    let analysed = statistics::analyze_grown(&db.pool).await.unwrap();
    assert!(analysed.iter().any(|t| t == "core.tenants"), "analysed: {analysed:?}");
}
