//! Proactive OAuth2 refresh (decision 0026): a background task of `spine up` that every minute
//! refreshes the access tokens of oauth2 connections about to expire ([`oauth::sweep`]), so calls
//! rarely wait for a refresh. Each refresh takes the connection's lock, so any number of
//! processes may run this at once and a token is still refreshed once.

use std::sync::Arc;
use std::time::Duration;

use spine_core::vault::Keyring;
use spine_store::{Store, StoreError};

use super::oauth;
use crate::supervisor::Shutdown;

/// Who the vault's audit names for these refreshes.
pub const ACTOR: &str = "spine:oauth-refresh";

pub struct OAuthRefresher {
    store: Store,
    keyring: Arc<Keyring>,
    every: Duration,
}

impl OAuthRefresher {
    pub fn new(store: Store, keyring: Arc<Keyring>, every: Duration) -> Self {
        Self { store, keyring, every }
    }

    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), StoreError> {
        loop {
            match oauth::sweep(&self.store, &self.keyring, ACTOR).await {
                Ok((0, 0)) => {}
                Ok((ok, failed)) => tracing::info!(refreshed = ok, failed, "oauth2: proactive refresh"),
                Err(e) => tracing::warn!(error = %e, "oauth2: proactive refresh sweep failed; will retry"),
            }
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }
}
