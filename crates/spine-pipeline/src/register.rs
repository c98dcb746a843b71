//! Registration for every ingress (upload, inbox, device agents, connectors): stream each item
//! into the blob store while sniffing its media type, then record the arrival in one ingest
//! transaction (`spine_store::repos::registration`). A registration that fails leaves no rows and
//! no blob it created (decision 0019).
//!
//! Many small items arriving close together share their durability ([`Registrar::stage`] then
//! [`Registrar::commit`], the group committer of [`group`]; decision 0027): one flush of the
//! blob store for the group's bytes and one registration transaction per tenant, each item
//! still registered (or refused) on its own.

mod group;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::Value;
use spine_core::ids::TenantId;
use spine_core::{file_name, media_type};
use spine_store::blob::{BlobError, BlobStore, StagedBlob};
use spine_store::repos::registration::{self, Arrival, Registered, StoredItem};
use spine_store::{Store, StoreError, TenantTx};
use thiserror::Error;
use tokio::io::{AsyncRead, ReadBuf};

pub use spine_store::repos::registration::{Arrival as RegistrationArrival, PROCESS_FILE_KIND};

#[derive(Debug, Error)]
pub enum RegisterError {
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("blob {0} disappeared while it was being registered; send the file again")]
    BlobVanished(String),
    #[error("the registration group stopped before this item was registered; send the file again")]
    GroupStopped,
}

impl RegisterError {
    /// The item was larger than the configured limit (nothing was kept).
    pub fn too_large(&self) -> Option<u64> {
        match self {
            RegisterError::Blob(BlobError::TooLarge { limit }) => Some(*limit),
            _ => None,
        }
    }
}

/// An item whose bytes are in the blob store, waiting to be registered.
#[derive(Debug)]
pub struct Pending {
    item: StoredItem,
    /// True when this put created the blob (so a failed registration must remove it).
    created: bool,
}

impl Pending {
    pub fn item(&self) -> &StoredItem {
        &self.item
    }
}

/// An item whose bytes are written but may not be durable yet: [`Registrar::commit`] makes them
/// durable with its group, then registers it. Dropping it leaves nothing behind.
#[derive(Debug)]
pub struct Staged {
    item: StoredItem,
    blob: StagedBlob,
}

impl Staged {
    pub fn item(&self) -> &StoredItem {
        &self.item
    }
}

/// Registers arrivals for one store and blob store.
#[derive(Clone)]
pub struct Registrar {
    store: Store,
    blobs: BlobStore,
    max_size: Option<u64>,
    group: Arc<group::GroupCommitter>,
}

impl Registrar {
    pub fn new(store: Store, blobs: BlobStore, max_size: Option<u64>) -> Self {
        let group = Arc::new(group::GroupCommitter::new(store.clone(), blobs.clone()));
        Self { store, blobs, max_size, group }
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn max_size(&self) -> Option<u64> {
        self.max_size
    }

    /// Streams one item into the blob store (constant memory; past the size limit nothing is
    /// kept) and detects its media type from the first bytes.
    pub async fn put(
        &self,
        name: &str,
        details: Value,
        reader: impl AsyncRead + Unpin + Send,
    ) -> Result<Pending, RegisterError> {
        let mut tap = HeadTap { inner: reader, head: Vec::with_capacity(media_type::HEAD_LEN) };
        let put = self.blobs.put(&mut tap, self.max_size).await?;
        let item = stored_item(name, details, &tap.head, put.sha256, put.size);
        Ok(Pending { item, created: put.created })
    }

    /// Like [`Self::put`], but a small item's bytes are only written: [`Self::commit`] flushes
    /// them with the rest of its group.
    pub async fn stage(
        &self,
        name: &str,
        details: Value,
        reader: impl AsyncRead + Unpin + Send,
    ) -> Result<Staged, RegisterError> {
        let mut tap = HeadTap { inner: reader, head: Vec::with_capacity(media_type::HEAD_LEN) };
        let blob = self.blobs.stage(&mut tap, self.max_size).await?;
        let item = stored_item(name, details, &tap.head, blob.sha256().to_owned(), blob.size());
        Ok(Staged { item, blob })
    }

    /// Makes staged items durable and registers them, together with whatever else is being
    /// committed at the same time (group commit, decision 0027). Each item succeeds or fails on
    /// its own: an item whose registration fails leaves no rows and no blob it created, and does
    /// not fail the others. Results come in the order of `items`; when one is `Ok`, its blob and
    /// its rows are durable.
    pub async fn commit(
        &self,
        tenant: TenantId,
        arrival: &Arrival,
        items: Vec<Staged>,
    ) -> Vec<Result<Registered, RegisterError>> {
        self.group.commit(tenant, arrival, items).await
    }

    /// Records the items of one arrival in one transaction. On failure, blobs this arrival
    /// created and nothing else uses are removed.
    pub async fn register(
        &self,
        tenant: TenantId,
        arrival: &Arrival,
        items: Vec<Pending>,
    ) -> Result<Vec<Registered>, RegisterError> {
        let stored: Vec<StoredItem> = items.iter().map(|p| p.item.clone()).collect();
        match self.try_register(tenant, arrival, &stored, &items).await {
            Ok(done) => Ok(done),
            Err(e) => {
                self.discard(items).await;
                Err(e)
            }
        }
    }

    async fn try_register(
        &self,
        tenant: TenantId,
        arrival: &Arrival,
        stored: &[StoredItem],
        items: &[Pending],
    ) -> Result<Vec<Registered>, RegisterError> {
        try_register(&self.store, &self.blobs, tenant, &[(arrival, stored)], items).await.map(|mut d| d.remove(0))
    }

    /// Forgets staged items that will not be committed: a small item's temp file goes with it,
    /// a large one's blob (already durable) is removed like [`Self::discard`]'s.
    pub async fn discard_staged(&self, items: Vec<Staged>) {
        let durable = items
            .into_iter()
            .filter_map(|s| match s.blob {
                StagedBlob::Durable(put) => Some(Pending { item: s.item, created: put.created }),
                StagedBlob::Unsynced(_) => None,
            })
            .collect();
        self.discard(durable).await
    }

    /// Forgets items that will not be registered: removes each blob this put created unless a
    /// file version uses it (under the blob's lock, so no registration can be using it midway).
    pub async fn discard(&self, items: Vec<Pending>) {
        discard(&self.store, &self.blobs, items).await
    }

    /// Puts and registers one item as its own arrival.
    pub async fn register_one(
        &self,
        tenant: TenantId,
        arrival: &Arrival,
        name: &str,
        details: Value,
        reader: impl AsyncRead + Unpin + Send,
    ) -> Result<Registered, RegisterError> {
        let pending = self.put(name, details, reader).await?;
        let mut done = self.register(tenant, arrival, vec![pending]).await?;
        Ok(done.remove(0))
    }
}

fn stored_item(name: &str, details: Value, head: &[u8], sha256: String, size: u64) -> StoredItem {
    let complete = size as usize == head.len();
    let media = media_type::detect(head, complete, name);
    StoredItem {
        original_name: file_name::original_name(name),
        storage_name: file_name::storage_name(name),
        sha256,
        size,
        media_type: media.to_owned(),
        details,
    }
}

/// Registers arrivals of one tenant in one transaction; `items` are all their items (the blobs
/// an existing blob was reused for are checked to still be there, under the hash locks).
async fn try_register(
    store: &Store,
    blobs: &BlobStore,
    tenant: TenantId,
    arrivals: &[(&Arrival, &[StoredItem])],
    items: &[Pending],
) -> Result<Vec<Vec<Registered>>, RegisterError> {
    let (tx, done) = prepare(store, tenant, arrivals).await?;
    let puts: Vec<(&str, bool)> = items.iter().map(|p| (p.item.sha256.as_str(), p.created)).collect();
    finish(tx, blobs, &puts).await?;
    Ok(done)
}

/// The rows of a registration, written in a transaction of the tenant that is left open: they
/// do not depend on the bytes being durable, only its commit ([`finish`]) does.
async fn prepare(
    store: &Store,
    tenant: TenantId,
    arrivals: &[(&Arrival, &[StoredItem])],
) -> Result<(TenantTx, Vec<Vec<Registered>>), RegisterError> {
    let mut tx = store.ingest_tx_generic_plans(tenant).await?;
    let done = registration::register_arrivals(&mut tx, arrivals).await?;
    Ok((tx, done))
}

/// Commits a [`prepare`]d registration once every item's blob is durable; `blobs_put` are the
/// items' hashes, each with whether its put created the blob.
async fn finish(tx: TenantTx, blobs: &BlobStore, blobs_put: &[(&str, bool)]) -> Result<(), RegisterError> {
    match reused_blobs_exist(blobs, blobs_put).await {
        Ok(()) => Ok(tx.commit().await?),
        // Now, so that its locks are free for whoever registers these items next.
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Under the hash locks register took: a blob another arrival's cleanup removed between our put
/// and now would leave a version without bytes.
async fn reused_blobs_exist(blobs: &BlobStore, blobs_put: &[(&str, bool)]) -> Result<(), RegisterError> {
    for &(sha256, created) in blobs_put {
        if !created && !blobs.exists(sha256).await? {
            return Err(RegisterError::BlobVanished(sha256.to_owned()));
        }
    }
    Ok(())
}

async fn discard(store: &Store, blobs: &BlobStore, items: Vec<Pending>) {
    for p in items.into_iter().filter(|p| p.created) {
        if let Err(e) = remove_unreferenced(store, blobs, &p.item.sha256).await {
            tracing::warn!(sha256 = %p.item.sha256, error = %e, "could not remove an unregistered blob; spine fsck --repair will");
        }
    }
}

async fn remove_unreferenced(store: &Store, blobs: &BlobStore, sha256: &str) -> Result<(), RegisterError> {
    let mut tx = store.system_tx().await?;
    registration::lock_blob(tx.conn(), sha256).await?;
    if !registration::blob_referenced(tx.conn(), sha256).await? {
        blobs.delete(sha256).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Passes bytes through, keeping a copy of the first [`media_type::HEAD_LEN`].
struct HeadTap<R> {
    inner: R,
    head: Vec<u8>,
}

impl<R: AsyncRead + Unpin> AsyncRead for HeadTap<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let room = media_type::HEAD_LEN.saturating_sub(this.head.len());
            let fresh = &buf.filled()[before..];
            this.head.extend_from_slice(&fresh[..fresh.len().min(room)]);
        }
        polled
    }
}
