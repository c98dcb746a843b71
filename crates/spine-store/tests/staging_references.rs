//! The references of staged rows (decision 0020): checked once per statement instead of by
//! row-level foreign keys, with the same guarantees. A row with another tenant's (or a missing)
//! batch or file is refused with a clear error; rows always carry the transaction's tenant;
//! deleting, or changing the key of, a batch, file or tenant that rows reference is refused; a
//! delete racing a load waits for it and is then refused.

use std::time::Duration;

use serde_json::json;
use spine_core::ids::TenantId;
use spine_store::repos::staging::{self, ImportRow, StagingCopy};
use spine_store::{Store, StoreError};
use sqlx::PgPool;
use uuid::Uuid;

struct Fixture {
    db: spine_testkit::TestDb,
    store: Store,
    tenant: TenantId,
    batch: Uuid,
    file: Uuid,
}

async fn fixture() -> Fixture {
    let db = spine_testkit::test_db().await;
    let tenant = TenantId::new();
    let (batch, file) = make_batch(&db.pool, tenant, "refs").await;
    let store = Store::new(db.pool.clone());
    Fixture { db, store, tenant, batch, file }
}

/// A tenant with a source, a file and an import batch, made as the superuser.
async fn make_batch(pool: &PgPool, tenant: TenantId, slug: &str) -> (Uuid, Uuid) {
    let t = tenant.as_uuid();
    sqlx::query("INSERT INTO core.tenants (id, slug, display_name) VALUES ($1, $2, 'T')")
        .bind(t)
        .bind(slug)
        .execute(pool)
        .await
        .unwrap();
    let source: Uuid = sqlx::query_scalar(
        "INSERT INTO qinexus.sources (tenant_id, source_key, source_kind, display_name) \
         VALUES ($1, 'upload', 'upload', 'Upload') RETURNING id",
    )
    .bind(t)
    .fetch_one(pool)
    .await
    .unwrap();
    let file = new_file(pool, t, source, "people.csv").await;
    let batch = new_batch(pool, t, source).await;
    (batch, file)
}

async fn source_of(pool: &PgPool, batch: Uuid) -> (Uuid, Uuid) {
    sqlx::query_as("SELECT tenant_id, source_id FROM qinexus.import_batches WHERE id = $1")
        .bind(batch)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn new_file(pool: &PgPool, tenant: Uuid, source: Uuid, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO qinexus.files (tenant_id, source_id, original_name, storage_name, content_sha256, size_bytes, media_type) \
         VALUES ($1, $2, $3, $3, repeat('a', 64), 10, 'text/csv') RETURNING id",
    )
    .bind(tenant)
    .bind(source)
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn new_batch(pool: &PgPool, tenant: Uuid, source: Uuid) -> Uuid {
    sqlx::query_scalar("INSERT INTO qinexus.import_batches (tenant_id, source_id) VALUES ($1, $2) RETURNING id")
        .bind(tenant)
        .bind(source)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn rows(n: u32) -> Vec<ImportRow> {
    (1..=n)
        .map(|i| ImportRow::Parsed {
            row_number: i,
            payload: json!({"n": i.to_string()}).as_object().cloned().unwrap(),
        })
        .collect()
}

fn message(e: &StoreError) -> String {
    match e {
        StoreError::Invalid(m) => m.clone(),
        other => panic!("expected Invalid (a refused reference), got {other:?}"),
    }
}

fn sqlstate(e: sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_else(|| format!("{e}"))
}

/// One staged row written by a plain INSERT, bypassing the loader.
async fn insert_row(conn: &mut sqlx::PgConnection, tenant: Uuid, batch: Uuid, file: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO staging.import_rows (tenant_id, import_batch_id, source_file_id, row_number, raw_payload) \
         VALUES ($1, $2, $3, 1, '{}')",
    )
    .bind(tenant)
    .bind(batch)
    .bind(file)
    .execute(conn)
    .await
    .map(drop)
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM staging.import_rows").fetch_one(pool).await.unwrap()
}

async fn load(f: &Fixture) {
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    staging::copy_rows(&mut tx, f.batch, f.file, rows(3)).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn another_tenants_batch_or_file_is_refused_with_a_clear_error() {
    let f = fixture().await;
    let other = TenantId::new();
    let (other_batch, other_file) = make_batch(&f.db.pool, other, "other").await;

    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let err = staging::copy_rows(&mut tx, other_batch, f.file, rows(2)).await.unwrap_err();
    let m = message(&err);
    assert!(m.contains(&format!("import batch {other_batch} does not exist in tenant {}", f.tenant.as_uuid())), "{m}");
    drop(tx);

    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let err = staging::copy_rows(&mut tx, f.batch, other_file, rows(2)).await.unwrap_err();
    let m = message(&err);
    assert!(m.contains(&format!("file {other_file} does not exist in tenant {}", f.tenant.as_uuid())), "{m}");
    drop(tx);

    // The other tenant's own rows, written in the first tenant's transaction, are refused by RLS:
    // a row always gets the transaction's tenant.
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let err = insert_row(tx.conn(), other.as_uuid(), other_batch, other_file).await.unwrap_err();
    assert_eq!(sqlstate(err), "42501");
    drop(tx);
    assert_eq!(count(&f.db.pool).await, 0);
}

/// The loader COPYs as the tables' owner (decision 0031): the transaction's role is back after
/// every load, and rows of another tenant than the transaction's are refused even for the owner.
#[tokio::test]
async fn the_owners_copy_is_pinned_to_the_transactions_tenant_and_gives_the_role_back() {
    let f = fixture().await;
    for (mut tx, role) in [
        (f.store.tenant_tx(f.tenant).await.unwrap(), "spine_app"),
        (f.store.ingest_tx(f.tenant).await.unwrap(), "spine_ingest"),
    ] {
        // Each COPY statement raises work_mem for itself (decision 0032) and puts back the
        // transaction's own value, whatever it was.
        sqlx::raw_sql("SET LOCAL work_mem = '7MB'").execute(tx.conn()).await.unwrap();
        staging::copy_rows(&mut tx, f.batch, f.file, rows(3)).await.unwrap();
        let user: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(tx.conn()).await.unwrap();
        assert_eq!(user, role, "the transaction's role after a load");
        let work_mem: String =
            sqlx::query_scalar("SELECT current_setting('work_mem')").fetch_one(tx.conn()).await.unwrap();
        assert_eq!(work_mem, "7MB", "the transaction's work_mem after a load");
        if role == "spine_ingest" {
            let err = sqlx::query("INSERT INTO core.people (tenant_id, full_name) VALUES ($1, 'P')")
                .bind(f.tenant.as_uuid())
                .execute(tx.conn())
                .await
                .unwrap_err();
            assert_eq!(sqlstate(err), "42501", "the integration law holds after a load");
        }
    }

    let other = TenantId::new();
    let (other_batch, other_file) = make_batch(&f.db.pool, other, "other").await;
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    sqlx::raw_sql("SET LOCAL ROLE NONE").execute(tx.conn()).await.unwrap();
    let err = insert_row(tx.conn(), other.as_uuid(), other_batch, other_file).await.unwrap_err();
    let db = err.as_database_error().unwrap();
    assert_eq!(db.code().as_deref(), Some("42501"));
    assert_eq!(db.constraint(), Some("import_rows_tenant"));
    assert!(db.message().contains(&format!("staged rows of tenant {} in a transaction of tenant", other.as_uuid())));
    drop(tx);
    assert_eq!(count(&f.db.pool).await, 0);
}

#[tokio::test]
async fn a_missing_reference_in_a_copy_is_refused_and_leaves_nothing() {
    let f = fixture().await;
    let missing = Uuid::now_v7();
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    // Rows are checked per COPY statement: the load fails at the first one, and streaming more
    // rows after it does not hide it.
    let mut copy = StagingCopy::begin(&mut tx, f.batch, missing).await.unwrap();
    let mut failed = None;
    for row in rows(40_000) {
        if let Err(e) = copy.push(&row).await {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => copy.finish().await.unwrap_err(),
    };
    let m = message(&err);
    assert!(m.starts_with("staged row: staged row references:"), "{m}");
    assert!(m.contains(&format!("file {missing} does not exist in tenant {}", f.tenant.as_uuid())), "{m}");
    drop(tx);
    assert_eq!(count(&f.db.pool).await, 0);

    // The SQLSTATE and constraint name are those of a foreign key's.
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let err = insert_row(tx.conn(), f.tenant.as_uuid(), missing, f.file).await.unwrap_err();
    let db = err.as_database_error().unwrap();
    assert_eq!(db.code().as_deref(), Some("23503"));
    assert_eq!(db.constraint(), Some("import_rows_references"));
    assert!(db.message().contains(&format!("import batch {missing} does not exist")), "{}", db.message());
}

/// A staged row's (tenant, batch, file).
type Target = (Uuid, Uuid, Uuid);

/// One statement staging a row per target, as the tables' owner (as the loader's COPY does).
async fn insert_targets(tx: &mut spine_store::TenantTx, targets: &[Target]) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SET LOCAL ROLE NONE").execute(tx.conn()).await?;
    let column = |pick: fn(&Target) -> Uuid| targets.iter().map(pick).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO staging.import_rows (tenant_id, import_batch_id, source_file_id, row_number, raw_payload) \
         SELECT t, b, f, n, '{}' FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) WITH ORDINALITY AS r (t, b, f, n)",
    )
    .bind(column(|x| x.0))
    .bind(column(|x| x.1))
    .bind(column(|x| x.2))
    .execute(tx.conn())
    .await
    .map(drop)
}

/// The check reads a statement's first row and then every row that differs from it (decision
/// 0032): a bad target anywhere in a statement is refused, valid mixed ones pass.
#[tokio::test]
async fn every_target_of_a_mixed_statement_is_checked() {
    let f = fixture().await;
    let pool = &f.db.pool;
    let (tenant, source) = source_of(pool, f.batch).await;
    let second_batch = new_batch(pool, tenant, source).await;
    let second_file = new_file(pool, tenant, source, "second.csv").await;
    let other = TenantId::new();
    let (other_batch, other_file) = make_batch(pool, other, "other").await;
    let missing = Uuid::now_v7();
    let (t, b, fl) = (f.tenant.as_uuid(), f.batch, f.file);
    // The bad target is never the first row, and hides among rows like the first.
    let bad = [
        ("missing batch", "23503", [(t, b, fl), (t, b, fl), (t, missing, fl), (t, b, fl)]),
        ("missing file", "23503", [(t, b, fl), (t, second_batch, fl), (t, b, fl), (t, b, missing)]),
        ("another tenant's batch", "23503", [(t, b, fl), (t, b, fl), (t, other_batch, fl), (t, b, fl)]),
        (
            "another tenant's rows",
            "42501",
            [(t, b, fl), (t, b, fl), (t, b, fl), (other.as_uuid(), other_batch, other_file)],
        ),
    ];
    for (what, code, targets) in bad {
        let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
        let err = insert_targets(&mut tx, &targets).await.expect_err(what);
        let db = err.as_database_error().unwrap();
        assert_eq!(db.code().as_deref(), Some(code), "{what}: {}", db.message());
    }
    assert_eq!(count(pool).await, 0);

    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    insert_targets(&mut tx, &[(t, b, fl), (t, second_batch, fl), (t, b, second_file), (t, second_batch, second_file)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(pool).await, 4);
}

#[tokio::test]
async fn deleting_referenced_batches_files_and_tenants_is_refused() {
    let f = fixture().await;
    load(&f).await;
    let pool = &f.db.pool;
    for (sql, id) in [
        ("DELETE FROM qinexus.import_batches WHERE id = $1", f.batch),
        ("DELETE FROM qinexus.files WHERE id = $1", f.file),
    ] {
        let err = sqlx::query(sql).bind(id).execute(pool).await.unwrap_err();
        let db = err.as_database_error().unwrap();
        assert_eq!(db.code().as_deref(), Some("23503"), "{sql}: {}", db.message());
        assert!(db.message().contains(&format!("{id}: staged rows still reference it")), "{sql}: {}", db.message());
    }
    // (The tenant's other rows' foreign keys may refuse first; either way, 23503.)
    let err = sqlx::query("DELETE FROM core.tenants WHERE id = $1").bind(f.tenant.as_uuid()).execute(pool).await;
    assert_eq!(sqlstate(err.unwrap_err()), "23503");
    // As the tenant itself (RLS), too.
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    let err = sqlx::query("DELETE FROM qinexus.import_batches WHERE id = $1")
        .bind(f.batch)
        .execute(tx.conn())
        .await
        .unwrap_err();
    assert_eq!(sqlstate(err), "23503");
    drop(tx);

    // Unreferenced ones go, and so do referenced ones once their rows are gone.
    let (tenant, source) = source_of(pool, f.batch).await;
    let spare_batch = new_batch(pool, tenant, source).await;
    let spare_file = new_file(pool, tenant, source, "spare.csv").await;
    sqlx::query("DELETE FROM qinexus.import_batches WHERE id = $1").bind(spare_batch).execute(pool).await.unwrap();
    sqlx::query("DELETE FROM qinexus.files WHERE id = $1").bind(spare_file).execute(pool).await.unwrap();
    sqlx::query("DELETE FROM staging.import_rows").execute(pool).await.unwrap();
    sqlx::query("DELETE FROM qinexus.import_batches WHERE id = $1").bind(f.batch).execute(pool).await.unwrap();
    sqlx::query("DELETE FROM qinexus.files WHERE id = $1").bind(f.file).execute(pool).await.unwrap();
}

#[tokio::test]
async fn references_and_referenced_keys_cannot_change() {
    let f = fixture().await;
    load(&f).await;
    let pool = &f.db.pool;
    let (tenant, source) = source_of(pool, f.batch).await;
    let second_batch = new_batch(pool, tenant, source).await;
    let other = TenantId::new();
    make_batch(pool, other, "other").await;

    // A staged row keeps its batch, file and tenant (even when the new batch would be valid).
    for (sql, value) in [
        ("UPDATE staging.import_rows SET import_batch_id = $1", second_batch),
        ("UPDATE staging.import_rows SET source_file_id = $1", Uuid::now_v7()),
        ("UPDATE staging.import_rows SET tenant_id = $1", other.as_uuid()),
    ] {
        let err = sqlx::query(sql).bind(value).execute(pool).await.unwrap_err();
        assert_eq!(sqlstate(err), "23503", "{sql}");
    }
    // Review updates (other columns) are not affected.
    sqlx::query("UPDATE staging.import_rows SET review_status = 'approved', decided_by = 'user:x'")
        .execute(pool)
        .await
        .unwrap();

    // A referenced batch or file cannot move to another tenant or change its id.
    for (sql, id) in [
        ("UPDATE qinexus.import_batches SET tenant_id = $2 WHERE id = $1", f.batch),
        ("UPDATE qinexus.files SET tenant_id = $2 WHERE id = $1", f.file),
        ("UPDATE qinexus.import_batches SET id = $2 WHERE id = $1", f.batch),
        ("UPDATE core.tenants SET id = $2 WHERE id = $1", f.tenant.as_uuid()),
    ] {
        let to = if sql.contains("tenant_id") { other.as_uuid() } else { Uuid::now_v7() };
        let err = sqlx::query(sql).bind(id).bind(to).execute(pool).await.unwrap_err();
        let db = err.as_database_error().unwrap();
        // 23503 from the guard (a composite foreign key of another table may refuse first).
        assert_eq!(db.code().as_deref(), Some("23503"), "{sql}: {}", db.message());
    }
    // An unreferenced batch's key may change.
    sqlx::query("UPDATE qinexus.import_batches SET id = gen_random_uuid() WHERE id = $1")
        .bind(second_batch)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_delete_racing_a_load_waits_for_it_and_is_refused() {
    let f = fixture().await;
    // The load has moved rows (and so locked its batch) but not committed.
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    staging::copy_rows(&mut tx, f.batch, f.file, rows(3)).await.unwrap();
    let pool = f.db.pool.clone();
    let batch = f.batch;
    let delete = tokio::spawn(async move {
        sqlx::query("DELETE FROM qinexus.import_batches WHERE id = $1").bind(batch).execute(&pool).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!delete.is_finished(), "the delete waits for the load's lock on the batch");
    tx.commit().await.unwrap();
    let err = delete.await.unwrap().unwrap_err();
    assert_eq!(sqlstate(err), "23503");
    assert_eq!(count(&f.db.pool).await, 3);
}

#[tokio::test]
async fn a_load_racing_a_delete_waits_for_it_and_fails() {
    let f = fixture().await;
    // The batch is deleted but the delete has not committed.
    let mut deleter = f.db.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM qinexus.import_batches WHERE id = $1").bind(f.batch).execute(&mut *deleter).await.unwrap();
    let store = f.store.clone();
    let (tenant, batch, file) = (f.tenant, f.batch, f.file);
    let load = tokio::spawn(async move {
        let mut tx = store.tenant_tx(tenant).await.unwrap();
        staging::copy_rows(&mut tx, batch, file, rows(3)).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!load.is_finished(), "the load's check waits for the delete");
    deleter.commit().await.unwrap();
    let err = load.await.unwrap().unwrap_err();
    assert!(message(&err).contains(&format!("import batch {batch} does not exist")), "{err:?}");
    assert_eq!(count(&f.db.pool).await, 0);
}

#[tokio::test]
async fn staged_ids_are_version_7_in_row_order() {
    let f = fixture().await;
    let mut tx = f.store.tenant_tx(f.tenant).await.unwrap();
    staging::copy_rows(&mut tx, f.batch, f.file, rows(5_000)).await.unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM staging.import_rows ORDER BY row_number")
        .fetch_all(&f.db.pool)
        .await
        .unwrap();
    assert_eq!(ids.len(), 5_000);
    assert!(ids.iter().all(|id| id.get_version_num() == 7));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend with row numbers");
    // Other tenants still see none of them.
    let other = TenantId::new();
    make_batch(&f.db.pool, other, "other").await;
    let mut tx = f.store.tenant_tx(other).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM staging.import_rows").fetch_one(tx.conn()).await.unwrap();
    assert_eq!(seen, 0);
}
