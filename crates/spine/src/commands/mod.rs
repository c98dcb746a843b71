//! One file per command group.

pub mod admin;
pub mod bench;
pub mod bench_blobs;
mod bench_enqueue;
mod bench_probe;
pub mod bench_staging;
pub mod bench_vault;
mod bench_worker;
pub mod connections;
pub mod fsck;
pub mod governance;
pub mod ingest;
pub mod jobs;
pub mod review;
pub mod schedules;
pub mod up;
pub mod vault;
pub mod worker;
