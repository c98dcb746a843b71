//! The job kinds every Spine process can run. Ingestion, sync and delivery kinds join as the
//! pipeline grows.
//! - `spine.noop` succeeds at once (smoke tests and queue benchmarks).
//! - `spine.http.check` checks that a URL answers (an uptime probe, or a target's reachability
//!   before a connection is used); its failures carry seed 004's error classes.

mod http_check;

use std::collections::BTreeMap;

use spine_core::jobs::RetryPolicy;

use crate::worker::Handlers;

pub use http_check::{HTTP_CHECK, HttpCheck, check as http_check};

/// `spine.noop`: succeeds at once.
pub const NOOP: &str = "spine.noop";

/// The built-in handlers with the default retry policy, or the one configured for their kind.
pub fn handlers_with(policies: &BTreeMap<String, RetryPolicy>) -> Handlers {
    let policy = |kind: &str| policies.get(kind).cloned().unwrap_or_default();
    Handlers::new().register(NOOP, policy(NOOP), |_ctx| async { Ok(()) }).register(
        HTTP_CHECK,
        policy(HTTP_CHECK),
        http_check::run,
    )
}

pub fn handlers() -> Handlers {
    handlers_with(&BTreeMap::new())
}
