//! Forward-only migrations, embedded in the binary and applied under an advisory lock.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::StoreError;

/// The migrations in `/migrations`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Applies every pending migration. sqlx takes `pg_advisory_lock` for the duration, so a second
/// process calling this at the same time waits and then finds nothing left to do.
pub async fn run(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The versions embedded in this binary that the database has not applied (or applied with a
/// different checksum). Empty means the schema is current.
pub async fn pending(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let applied: Vec<(i64, Vec<u8>, bool)> =
        match sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations").fetch_all(pool).await {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .filter(|m| !applied.iter().any(|(v, c, ok)| *v == m.version && *ok && c.as_slice() == &*m.checksum))
        .map(|m| m.version)
        .collect())
}
