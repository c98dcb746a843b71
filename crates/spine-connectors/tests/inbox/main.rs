//! The inbox watcher against a real PostgreSQL, a real blob store and real folders (issue 4
//! item 5). One test binary; each test has its own database and directories.

mod bad_input;
mod batch;
mod bulk;
mod drop;
mod helpers;
mod read_only;
mod restart;
