//! The content-addressed blob store: every byte Spine keeps is stored once, under the lowercase
//! hex SHA-256 of its content, on the local file system or in an S3-compatible bucket.
//!
//! - [`BlobStore::put`] streams a reader through a fixed-size buffer, hashing while it writes, and
//!   publishes the blob only when it is complete and durable: a temp file is fsynced and linked
//!   into place (local), or a multipart upload to `tmp/<uuid>` is copied to `sha256/<hex>` (S3).
//!   The same bytes twice give one blob (`created = false` the second time). A failed, oversized
//!   or abandoned put leaves nothing behind: temp data is removed by a guard on drop, and temp
//!   files older than an hour are swept when the store opens and by `fsck`.
//! - [`BlobStore::stage`] is a put whose flush is shared by a group ([`flush_staged`]): one
//!   file-system flush for many small items instead of an fsync each (decision 0027).
//! - Hashes given by callers are checked strictly ([`check_hash`]): 64 lowercase hex characters,
//!   so no crafted name can reach outside the store.
//! - [`fsck`] compares the blobs with the database's references. See decision 0016.

mod deferred;
mod fsck;
mod ingest;
mod local;
mod s3;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use serde::Serialize;
use spine_core::secret::Secret;
use thiserror::Error;
use tokio::io::{AsyncRead, ReadBuf};

pub use deferred::{GROUP_FLUSH_MAX, StagedBlob, UnsyncedBlob, flush_staged};
pub use fsck::{FsckOptions, FsckProgress, FsckReport, fsck};
pub use local::LocalBlobs;
pub use s3::S3Blobs;

/// Temp data older than this is abandoned and may be swept.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Everything that can go wrong in the blob store.
#[derive(Debug, Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("content is larger than the limit of {limit} bytes; nothing was kept")]
    TooLarge { limit: u64 },
    #[error("invalid blob hash {0:?}: expected 64 lowercase hexadecimal characters")]
    InvalidHash(String),
    #[error("reading the content to store failed: {0}")]
    Input(#[source] io::Error),
    #[error("blob store I/O error ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("object storage error: {0}")]
    Remote(#[from] object_store::Error),
    #[error("blob {sha256} is corrupt: {detail}")]
    Corrupt { sha256: String, detail: String },
    #[error("blob store configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl BlobError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> BlobError {
        let context = context.into();
        move |source| BlobError::Io { context, source }
    }
}

/// Where blobs live.
#[derive(Clone, Debug)]
pub enum BlobConfig {
    /// `<root>/sha256/ab/cd/<hex>`, in-progress writes in `<root>/tmp/`.
    Local { root: std::path::PathBuf },
    /// `sha256/<hex>` in a bucket, in-progress writes in `tmp/<uuid>`.
    S3(S3Config),
}

/// An S3-compatible bucket.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// Endpoint URL for non-AWS servers (path-style requests are used then); unset: AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret<String>>,
    /// Allow plain `http://` endpoints (loopback test servers).
    pub allow_http: bool,
}

/// The result of a put.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PutBlob {
    pub sha256: String,
    pub size: u64,
    /// False when a blob with these bytes already existed.
    pub created: bool,
}

/// One stored blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    pub sha256: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// One piece of temp data (an abandoned or in-progress write).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TempEntry {
    pub name: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// The blob store: a closed set of backends.
#[derive(Clone, Debug)]
pub enum BlobStore {
    Local(LocalBlobs),
    S3(S3Blobs),
}

impl BlobStore {
    /// Opens the store (creating directories where needed) and sweeps temp data older than an hour.
    pub async fn from_config(config: &BlobConfig) -> Result<Self, BlobError> {
        let store = match config {
            BlobConfig::Local { root } => BlobStore::Local(LocalBlobs::open(root).await?),
            BlobConfig::S3(cfg) => BlobStore::S3(S3Blobs::open(cfg)?),
        };
        let swept = store.sweep_temp(STALE_TEMP_AGE, true).await?;
        if !swept.is_empty() {
            tracing::info!(count = swept.len(), "blob store: removed stale temp data");
        }
        Ok(store)
    }

    /// Stores the reader's bytes; see the module documentation for the guarantees.
    pub async fn put(
        &self,
        reader: impl AsyncRead + Unpin + Send,
        max_size: Option<u64>,
    ) -> Result<PutBlob, BlobError> {
        match self {
            BlobStore::Local(s) => s.put(reader, max_size).await,
            BlobStore::S3(s) => s.put(reader, max_size).await,
        }
    }

    /// A streaming reader of the blob's bytes.
    pub async fn open(&self, sha256: &str) -> Result<BlobReader, BlobError> {
        check_hash(sha256)?;
        match self {
            BlobStore::Local(s) => s.open_blob(sha256).await.map(BlobReader::Local),
            BlobStore::S3(s) => s.open_blob(sha256).await.map(BlobReader::S3),
        }
    }

    /// The blob's size and modification time, `None` when absent.
    pub async fn stat(&self, sha256: &str) -> Result<Option<BlobInfo>, BlobError> {
        check_hash(sha256)?;
        match self {
            BlobStore::Local(s) => s.stat(sha256).await,
            BlobStore::S3(s) => s.stat(sha256).await,
        }
    }

    pub async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        Ok(self.stat(sha256).await?.is_some())
    }

    /// The blob's size; `NotFound` when absent.
    pub async fn size(&self, sha256: &str) -> Result<u64, BlobError> {
        match self.stat(sha256).await? {
            Some(i) => Ok(i.size),
            None => Err(BlobError::NotFound(sha256.to_owned())),
        }
    }

    /// Removes the blob; true when it existed.
    pub async fn delete(&self, sha256: &str) -> Result<bool, BlobError> {
        check_hash(sha256)?;
        match self {
            BlobStore::Local(s) => s.delete(sha256).await,
            BlobStore::S3(s) => s.delete(sha256).await,
        }
    }

    /// Up to `limit` blobs in ascending hash order, starting after `after` (a page of [`list`]).
    ///
    /// [`list`]: BlobStore::list
    pub async fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<BlobInfo>, BlobError> {
        if let Some(a) = after {
            check_hash(a)?;
        }
        match self {
            BlobStore::Local(s) => s.list_page(after, limit).await,
            BlobStore::S3(s) => s.list_page(after, limit).await,
        }
    }

    /// Every blob, in ascending hash order, fetched a page at a time.
    pub fn list(&self) -> impl futures_util::Stream<Item = Result<BlobInfo, BlobError>> + '_ {
        const PAGE: usize = 1000;
        let start: (Option<String>, bool) = (None, false);
        futures_util::stream::try_unfold(start, move |(after, done)| async move {
            if done {
                return Ok(None);
            }
            let page = self.list_page(after.as_deref(), PAGE).await?;
            let done = page.len() < PAGE;
            let next = page.last().map(|b| b.sha256.clone()).or(after);
            Ok::<_, BlobError>(Some((futures_util::stream::iter(page.into_iter().map(Ok)), (next, done))))
        })
        .try_flatten()
    }

    /// Temp data last modified more than `older_than` ago; removed unless `remove` is false.
    pub async fn sweep_temp(&self, older_than: Duration, remove: bool) -> Result<Vec<TempEntry>, BlobError> {
        match self {
            BlobStore::Local(s) => s.sweep_temp(older_than, remove).await,
            BlobStore::S3(s) => s.sweep_temp(older_than, remove).await,
        }
    }

    /// Where the store is, for messages (no credentials).
    pub fn describe(&self) -> String {
        match self {
            BlobStore::Local(s) => format!("local:{}", s.root().display()),
            BlobStore::S3(s) => format!("s3:{}", s.bucket()),
        }
    }
}

/// Checks that `s` is a SHA-256 in lowercase hex (64 characters of `0-9a-f`).
pub fn check_hash(s: &str) -> Result<(), BlobError> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        let shown: String = s.chars().take(80).collect();
        Err(BlobError::InvalidHash(shown))
    }
}

/// A streaming reader of one blob.
pub enum BlobReader {
    Local(tokio::fs::File),
    S3(s3::S3Reader),
}

impl AsyncRead for BlobReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BlobReader::Local(f) => Pin::new(f).poll_read(cx, buf),
            BlobReader::S3(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}
