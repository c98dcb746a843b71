//! Opening the database: `DATABASE_URL` when set, otherwise the private cluster under
//! `data_dir/pg` (attached to when `spine up` already runs it, started and later stopped when not).

use std::time::Duration;

use spine_store::embedded::{Cluster, ClusterConfig};
use spine_store::nodelay::PgPoolOptionsExt;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::Settings;
use crate::error::CliError;

/// A pooled connection idle this long is tested before use.
const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

pub struct Database {
    pub pool: PgPool,
    cluster: Option<Cluster>,
    /// Where the data lives, for printing (never contains a password).
    pub location: String,
}

impl Database {
    pub async fn open(settings: &Settings) -> Result<Self, CliError> {
        let pool_opts = PgPoolOptions::new()
            .max_connections(settings.postgres.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // A connection is tested (one round trip) before use only when it sat idle for a
            // while: a busy connection was just used, and a test per acquire was a sixth of an
            // upload's round trips. One that broke meanwhile fails its query and is dropped.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= TEST_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            });
        if let Some(url) = &settings.database_url {
            let opts: sqlx::postgres::PgConnectOptions = url
                .expose()
                .parse()
                .map_err(|e| CliError::config(format!("DATABASE_URL is not a valid PostgreSQL URL: {e}")))?;
            let location =
                format!("postgresql://{}:{}/{}", opts.get_host(), opts.get_port(), opts.get_database().unwrap_or(""));
            let pool = pool_opts.tcp_nodelay(&opts).connect_with(opts).await.map_err(|e| {
                CliError::unavailable(format!("cannot connect to DATABASE_URL ({location}): {e}"))
                    .hint("check that the server runs and the URL's user, password and database are right, or unset DATABASE_URL to use the private cluster")
            })?;
            return Ok(Self { pool, cluster: None, location });
        }
        let mut cfg = ClusterConfig::new(settings.data_dir.join("pg"));
        cfg.bin_dir = settings.postgres.bin_dir.clone();
        cfg.os_user = settings.postgres.os_user.clone();
        let cluster = Cluster::attach_or_start(cfg).await.map_err(|e| {
            CliError::unavailable(e.to_string()).hint("see the server log under data_dir/pg/log, or set DATABASE_URL")
        })?;
        let location = cluster.display_url();
        let pool = match pool_opts.connect_with(cluster.connect_options()).await {
            Ok(p) => p,
            Err(e) => {
                let _ = cluster.stop().await;
                return Err(CliError::unavailable(format!("cannot connect to the private cluster: {e}")));
            }
        };
        Ok(Self { pool, cluster: Some(cluster), location })
    }

    /// Closes the pool and stops the private cluster if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(c) = self.cluster
            && let Err(e) = c.stop().await
        {
            tracing::warn!(error = %e, "stopping the private cluster failed");
        }
    }
}
