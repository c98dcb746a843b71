//! Shared pieces of the blob store tests: seeded content generated on the fly (never held in
//! memory), readers that fail or stall, and the bad-input corpus.

#![allow(dead_code)]

pub mod moto;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

const POOL: usize = 1 << 20;

/// `len` pseudo-random bytes from `seed`, produced as they are read: byte `p` is
/// `pool[(p + p / POOL) % POOL]` over a 1 MiB pool drawn from the seed, so successive megabytes
/// differ and a reader never holds more than the pool.
pub struct Seeded {
    pool: Arc<Vec<u8>>,
    pos: u64,
    len: u64,
}

impl Seeded {
    pub fn new(seed: u64, len: u64) -> Self {
        let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut pool = Vec::with_capacity(POOL);
        while pool.len() < POOL {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            pool.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Self { pool: Arc::new(pool), pos: 0, len }
    }

    /// Fills `out` with the next bytes; returns how many (0 at the end).
    pub fn fill(&mut self, out: &mut [u8]) -> usize {
        let want = out.len().min((self.len - self.pos) as usize);
        let mut done = 0;
        while done < want {
            let start = ((self.pos + self.pos / POOL as u64) % POOL as u64) as usize;
            // Stay inside both the pool and the current megabyte of output.
            let to_mb_end = POOL - (self.pos % POOL as u64) as usize;
            let n = (want - done).min(POOL - start).min(to_mb_end);
            out[done..done + n].copy_from_slice(&self.pool[start..start + n]);
            done += n;
            self.pos += n as u64;
        }
        done
    }

    /// The SHA-256 of the whole stream, computed by streaming it once more.
    pub fn expected_sha256(seed: u64, len: u64) -> String {
        let mut g = Seeded::new(seed, len);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = g.fill(&mut buf);
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        hex::encode(h.finalize())
    }
}

impl AsyncRead for Seeded {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.fill(buf.initialize_unfilled());
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Yields `ok_bytes` seeded bytes, then an error (or, with `stall`, pends forever).
pub struct Failing {
    inner: Seeded,
    stall: bool,
}

impl Failing {
    pub fn error_after(ok_bytes: u64) -> Self {
        Self { inner: Seeded::new(7, ok_bytes), stall: false }
    }
    pub fn stall_after(ok_bytes: u64) -> Self {
        Self { inner: Seeded::new(7, ok_bytes), stall: true }
    }
}

impl AsyncRead for Failing {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.inner.pos < this.inner.len {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.stall {
            Poll::Pending // never woken: the caller must give up on the future
        } else {
            Poll::Ready(Err(io::Error::other("the sender went away")))
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every regular file under the bad-input corpus (recursively; symlinks are not followed).
pub fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/bad-input");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for e in entries {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    assert!(out.len() >= 40, "expected the bad-input corpus under {}, found {} files", root.display(), out.len());
    out
}

/// Reads a whole blob back.
pub async fn read_all(r: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut v = Vec::new();
    r.read_to_end(&mut v).await.unwrap();
    v
}
