//! Every `test_db()` is its own database, cloned from the migrated template.

use spine_testkit::{template_name, test_db};

#[tokio::test]
async fn two_test_dbs_are_isolated() {
    let a = test_db().await;
    let b = test_db().await;
    assert_ne!(a.name, b.name);

    sqlx::query("CREATE TABLE only_in_a (id int)").execute(&a.pool).await.unwrap();
    let in_a: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('only_in_a')::text").fetch_one(&a.pool).await.unwrap();
    let in_b: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('only_in_a')::text").fetch_one(&b.pool).await.unwrap();
    assert_eq!(in_a.as_deref(), Some("only_in_a"));
    assert_eq!(in_b, None);

    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&b.pool).await.unwrap();
    assert_eq!(db, b.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_come_from_the_migrated_template() {
    let db = test_db().await;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&db.pool).await.unwrap();
    assert_eq!(one, 1);
    // Cloned from the template, so the migration bookkeeping is already there.
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&db.pool).await.unwrap();
    assert_eq!(applied as usize, spine_store::migrate::MIGRATOR.iter().count());
    assert!(template_name().starts_with("spine_tpl_") && template_name().len() == "spine_tpl_".len() + 12);
}
