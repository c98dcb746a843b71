//! The job kinds every Spine process can run. Ingestion, sync and delivery kinds join as the
//! pipeline grows; `spine.noop` exists for smoke tests and queue benchmarks.

use spine_core::jobs::RetryPolicy;

use crate::worker::Handlers;

/// `spine.noop`: succeeds at once.
pub const NOOP: &str = "spine.noop";

pub fn handlers() -> Handlers {
    Handlers::new().register(NOOP, RetryPolicy::default(), |_ctx| async { Ok(()) })
}
