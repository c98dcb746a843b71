use std::path::PathBuf;

use spine_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum InboxError {
    #[error("inbox configuration: {0}")]
    Config(String),
    #[error("inbox folder {path}: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tenant {0:?} of an inbox folder was not found")]
    TenantNotFound(String),
    #[error("file system events: {0}")]
    Notify(#[from] notify::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Register(#[from] spine_pipeline::register::RegisterError),
    #[error("inbox file {path}: {message}")]
    File { path: PathBuf, message: String },
}
