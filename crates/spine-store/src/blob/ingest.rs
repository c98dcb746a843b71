//! The reading half of a put, shared by the backends: fixed-size reads, hashing as the bytes go
//! by, and the size limit (reading stops at the first chunk past it).

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::BlobError;

/// Size of the read buffer of a put (and of fsck's re-hash).
pub(crate) const READ_CHUNK: usize = 1024 * 1024;

/// A put's buffer starts this small and grows (fourfold each time, up to [`READ_CHUNK`]) once the
/// put has read twice its size: zeroing a 1 MiB buffer for every small upload was the largest
/// single CPU cost in Spine of registering 64 KiB files (bench/README.md, session 7).
const FIRST_CHUNK: usize = 64 * 1024;

/// Hashes and counts what a put reads.
pub(crate) struct Ingest {
    hasher: Sha256,
    total: u64,
    limit: Option<u64>,
}

impl Ingest {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self { hasher: Sha256::new(), total: 0, limit }
    }

    /// A buffer for the first reads; pass it to [`Ingest::grow`] after each read.
    pub(crate) fn buffer() -> Vec<u8> {
        vec![0u8; FIRST_CHUNK]
    }

    /// Grows `buf` towards [`READ_CHUNK`] once the put has read twice its size, so a small
    /// file never pays for a large buffer and a large one soon reads a megabyte at a time.
    pub(crate) fn grow(&self, buf: &mut Vec<u8>) {
        if buf.len() < READ_CHUNK && self.total >= 2 * buf.len() as u64 {
            buf.resize((buf.len() * 4).min(READ_CHUNK), 0);
        }
    }

    /// Reads the next chunk into `buf` (0 at the end), hashing it. `TooLarge` as soon as the
    /// total passes the limit; at most one chunk past the limit is ever read.
    pub(crate) async fn read<R: AsyncRead + Unpin>(&mut self, r: &mut R, buf: &mut [u8]) -> Result<usize, BlobError> {
        let want = match self.limit {
            // Never ask for more than one byte past the limit.
            Some(limit) => buf.len().min(usize::try_from(limit.saturating_sub(self.total) + 1).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = loop {
            match r.read(&mut buf[..want]).await {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BlobError::Input(e)),
            }
        };
        self.total += n as u64;
        if let Some(limit) = self.limit
            && self.total > limit
        {
            return Err(BlobError::TooLarge { limit });
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    /// The lowercase hex SHA-256 of everything read.
    pub(crate) fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.total)
    }
}

/// Streams a reader to its SHA-256 and length (fsck's re-hash).
pub(crate) async fn hash_reader<R: AsyncRead + Unpin>(
    r: &mut R,
    mut on_bytes: impl FnMut(u64),
) -> Result<(String, u64), std::io::Error> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        on_bytes(n as u64);
    }
    Ok((hex::encode(hasher.finalize()), total))
}
