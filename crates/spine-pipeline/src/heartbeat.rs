//! Spine's own row in qiserver.services, with a health check (database round-trip time) written
//! at a fixed interval, so the system map shows whether Spine is alive.

use std::time::{Duration, Instant};

use spine_store::repos::runtime;
use spine_store::{Store, StoreError};

use crate::supervisor::Shutdown;

pub struct HeartbeatConfig {
    pub hostname: String,
    pub endpoint_url: String,
    pub interval: Duration,
}

pub struct Heartbeat {
    store: Store,
    config: HeartbeatConfig,
}

impl Heartbeat {
    pub fn new(store: Store, config: HeartbeatConfig) -> Self {
        Self { store, config }
    }

    /// Registers the service, then records a health check each interval until shutdown.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), StoreError> {
        let mut tx = self.store.system_tx().await?;
        let service = runtime::register_service(
            &mut tx,
            &self.config.hostname,
            std::env::consts::OS,
            "spine",
            &self.config.endpoint_url,
            env!("CARGO_PKG_VERSION"),
        )
        .await?;
        tx.commit().await?;
        loop {
            let started = Instant::now();
            let up = self.store.ping().await;
            let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
            if up {
                let mut tx = self.store.system_tx().await?;
                runtime::record_health(&mut tx, service, "ok", ms, "database round trip").await?;
                tx.commit().await?;
            }
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}
