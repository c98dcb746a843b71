//! The store's one error type. Callers match on the variants that they can act on; everything
//! else is `Database` and becomes an opaque 500 at the API.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("embedded PostgreSQL: {0}")]
    Embedded(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl StoreError {
    /// Maps a unique violation to `Conflict(what)` and a check violation to `Invalid`; passes
    /// everything else through.
    pub fn on_constraint(e: sqlx::Error, what: &str) -> StoreError {
        if let sqlx::Error::Database(db) = &e {
            match db.code().as_deref() {
                Some("23505") => return StoreError::Conflict(what.to_owned()),
                Some("23514") | Some("22P02") | Some("23502") | Some("23503") => {
                    return StoreError::Invalid(format!("{what}: {}", db.message()));
                }
                _ => {}
            }
        }
        StoreError::Database(e)
    }
}
