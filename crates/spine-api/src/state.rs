//! What every handler can reach.

use std::time::Duration;

use spine_core::auth::SessionSigner;
use spine_store::Store;

/// API limits and session settings, from the binary's typed config.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Requests running longer are abandoned with `timeout`.
    pub request_timeout: Duration,
    /// Lifetime of session tokens issued at sign-in.
    pub session_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// Renders the process's own metrics (installed by the binary; `None` in tests that need none).
pub type MetricsRender = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub signer: SessionSigner,
    pub config: ApiConfig,
    pub metrics: Option<MetricsRender>,
    /// Registration for uploads; `None` where the process takes no files (a worker's /metrics).
    pub registrar: Option<spine_pipeline::register::Registrar>,
    /// The vault's keyring, to seal connection secrets; `None` where no secret is written.
    pub keyring: Option<std::sync::Arc<spine_core::vault::Keyring>>,
}
