//! One file per command group.

pub mod admin;
pub mod bench;
mod bench_enqueue;
mod bench_probe;
mod bench_worker;
pub mod governance;
pub mod jobs;
pub mod schedules;
pub mod up;
pub mod worker;
