//! spine-connectors: ingress connectors. Each one turns something arriving from outside into
//! registrations through `spine_pipeline::register` (the integration law: ingress writes capture,
//! file and batch rows as `spine_ingest`, never canonical tables).
//!
//! - [`inbox`]: the local inbox watcher (watched folders on this machine).

pub mod inbox;
