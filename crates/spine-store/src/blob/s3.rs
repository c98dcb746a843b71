//! Blobs in an S3-compatible bucket through `object_store`: `sha256/<hex>`, writes in progress in
//! `tmp/<uuid>`.
//!
//! The hash is known only at the end, so a put reads the first part into memory: content that
//! ends within it goes straight to `sha256/<hex>` with one PUT (skipped when present). Larger
//! content streams as a multipart upload to `tmp/<uuid>` (parts of [`PART_SIZE`], at most
//! [`PARTS_IN_FLIGHT`] uploading at once, so memory stays bounded), which is then copied to
//! `sha256/<hex>` unless that exists, and deleted. [`Pending`] aborts the upload or deletes the
//! temp object when a put fails or its future is dropped.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, UploadPart};
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;

use super::ingest::Ingest;
use super::{BlobError, BlobInfo, PutBlob, S3Config, TempEntry, check_hash};

/// Size of a multipart upload's parts (S3 needs at least 5 MiB for all but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at once.
pub const PARTS_IN_FLIGHT: usize = 2;

pub type S3Reader = StreamReader<BoxStream<'static, io::Result<Bytes>>, Bytes>;

#[derive(Clone, Debug)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    bucket: String,
}

fn blob_path(sha256: &str) -> Path {
    Path::from(format!("sha256/{sha256}"))
}

/// Temp data of a put in progress: cleaned up on drop unless the put finished.
struct Pending {
    store: Arc<AmazonS3>,
    upload: Option<Box<dyn MultipartUpload>>,
    tmp: Option<Path>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let (upload, tmp) = (self.upload.take(), self.tmp.take());
        if upload.is_none() && tmp.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let store = self.store.clone();
        rt.spawn(async move {
            if let Some(mut u) = upload
                && let Err(e) = u.abort().await
            {
                tracing::warn!(error = %e, "blob store: aborting a multipart upload failed");
            }
            if let Some(t) = tmp
                && let Err(e) = store.delete(&t).await
            {
                tracing::warn!(error = %e, path = %t, "blob store: removing a temp object failed");
            }
        });
    }
}

impl S3Blobs {
    pub fn open(cfg: &S3Config) -> Result<Self, BlobError> {
        if cfg.bucket.is_empty() {
            return Err(BlobError::Config("blobs.s3.bucket is empty".into()));
        }
        let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(60), ..Default::default() };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_allow_http(cfg.allow_http)
            .with_retry(retry);
        if let Some(endpoint) = &cfg.endpoint {
            b = b.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &cfg.secret_access_key {
            b = b.with_secret_access_key(s.expose());
        }
        let store = b.build().map_err(|e| BlobError::Config(format!("S3: {e}")))?;
        Ok(Self { store: Arc::new(store), bucket: cfg.bucket.clone() })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(crate) async fn put(
        &self,
        mut reader: impl AsyncRead + Unpin + Send,
        max_size: Option<u64>,
    ) -> Result<PutBlob, BlobError> {
        let mut ingest = Ingest::new(max_size);
        let mut chunk = Ingest::buffer();
        let mut part: Vec<u8> = Vec::with_capacity(PART_SIZE);
        let mut pending = Pending { store: self.store.clone(), upload: None, tmp: None };
        let mut in_flight: VecDeque<UploadPart> = VecDeque::new();
        loop {
            // Never read past the part's end, so the part buffer never grows.
            let room = (PART_SIZE - part.len()).min(chunk.len());
            let n = ingest.read(&mut reader, &mut chunk[..room]).await?;
            if n == 0 {
                break;
            }
            part.extend_from_slice(&chunk[..n]);
            ingest.grow(&mut chunk);
            if part.len() >= PART_SIZE {
                if pending.upload.is_none() {
                    let tmp = Path::from(format!("tmp/{}", uuid::Uuid::new_v4().simple()));
                    pending.tmp = Some(tmp.clone());
                    pending.upload = Some(self.start_upload(tmp).await?);
                }
                let full = std::mem::replace(&mut part, Vec::with_capacity(PART_SIZE));
                let upload = pending.upload.as_mut().expect("started above");
                in_flight.push_back(upload.put_part(PutPayload::from(Bytes::from(full))));
                if in_flight.len() >= PARTS_IN_FLIGHT {
                    in_flight.pop_front().expect("not empty").await?;
                }
            }
        }
        let (sha256, size) = ingest.finish();
        let target = blob_path(&sha256);
        let Some(upload) = pending.upload.as_mut() else {
            // Everything fit in one part: one PUT to the final name, unless it is there already.
            if self.head(&target).await?.is_some_and(|m| m.size == size) {
                return Ok(PutBlob { sha256, size, created: false });
            }
            self.store.put(&target, PutPayload::from(Bytes::from(part))).await?;
            return Ok(PutBlob { sha256, size, created: true });
        };
        if !part.is_empty() {
            in_flight.push_back(upload.put_part(PutPayload::from(Bytes::from(part))));
        }
        while let Some(p) = in_flight.pop_front() {
            p.await?;
        }
        upload.complete().await?;
        pending.upload = None; // completed: only the temp object is left to clean up
        let tmp = pending.tmp.clone().expect("set with the upload");
        let created = if self.head(&target).await?.is_some_and(|m| m.size == size) {
            false
        } else {
            self.store.copy(&tmp, &target).await?;
            true
        };
        self.store.delete(&tmp).await?;
        pending.tmp = None;
        Ok(PutBlob { sha256, size, created })
    }

    /// Starts a multipart upload in a task of its own: when the put is dropped while the request
    /// is in flight, the task aborts the upload it created instead of leaking it.
    async fn start_upload(&self, tmp: Path) -> Result<Box<dyn MultipartUpload>, BlobError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.store.clone();
        tokio::spawn(async move {
            let started = store.put_multipart(&tmp).await;
            if let Err(Ok(mut abandoned)) = tx.send(started)
                && let Err(e) = abandoned.abort().await
            {
                tracing::warn!(error = %e, "blob store: aborting an abandoned multipart upload failed");
            }
        });
        let started =
            rx.await.map_err(|_| BlobError::io("starting a multipart upload")(io::Error::other("task lost")))?;
        Ok(started?)
    }

    async fn head(&self, path: &Path) -> Result<Option<object_store::ObjectMeta>, BlobError> {
        match self.store.head(path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn open_blob(&self, sha256: &str) -> Result<S3Reader, BlobError> {
        match self.store.get(&blob_path(sha256)).await {
            Ok(r) => Ok(StreamReader::new(r.into_stream().map_err(io::Error::other).boxed())),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(sha256.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn stat(&self, sha256: &str) -> Result<Option<BlobInfo>, BlobError> {
        let meta = self.head(&blob_path(sha256)).await?;
        Ok(meta.map(|m| BlobInfo { sha256: sha256.to_owned(), size: m.size, modified: m.last_modified }))
    }

    pub(crate) async fn delete(&self, sha256: &str) -> Result<bool, BlobError> {
        let path = blob_path(sha256);
        if self.head(&path).await?.is_none() {
            return Ok(false);
        }
        self.store.delete(&path).await?;
        Ok(true)
    }

    pub(crate) async fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<BlobInfo>, BlobError> {
        let prefix = Path::from("sha256");
        let listing = match after {
            Some(a) => self.store.list_with_offset(Some(&prefix), &blob_path(a)),
            None => self.store.list(Some(&prefix)),
        };
        let mut listing = listing;
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(name) = meta.location.filename() else { continue };
            if check_hash(name).is_err() || after.is_some_and(|a| name <= a) {
                continue;
            }
            out.push(BlobInfo { sha256: name.to_owned(), size: meta.size, modified: meta.last_modified });
            if out.len() >= limit {
                break;
            }
        }
        out.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        Ok(out)
    }

    pub(crate) async fn sweep_temp(&self, older_than: Duration, remove: bool) -> Result<Vec<TempEntry>, BlobError> {
        let cutoff = chrono::Duration::from_std(older_than).ok().and_then(|d| Utc::now().checked_sub_signed(d));
        let Some(cutoff) = cutoff else { return Ok(Vec::new()) };
        let mut listing = self.store.list(Some(&Path::from("tmp")));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified > cutoff {
                continue;
            }
            if remove {
                self.store.delete(&meta.location).await?;
            }
            let name = meta.location.filename().unwrap_or_default().to_owned();
            out.push(TempEntry { name, size: meta.size, modified: meta.last_modified });
        }
        Ok(out)
    }
}
