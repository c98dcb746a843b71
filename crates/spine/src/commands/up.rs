//! `spine up`: database, migrations, first-run bootstrap, API and background workers, until
//! SIGINT/SIGTERM; then a graceful stop (in-flight requests finish, workers stop, the private
//! cluster is shut down cleanly if this process started it).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use spine_api::{ApiConfig, AppState};
use spine_core::auth::SessionSigner;
use spine_core::secret::Secret;
use spine_pipeline::register::Registrar;
use spine_pipeline::{Heartbeat, HeartbeatConfig, StatisticsKeeper, Supervisor};
use spine_store::Store;

use crate::commands::admin;
use crate::config::Settings;
use crate::db::Database;
use crate::error::CliError;
use crate::output;

pub async fn run(settings: Settings, listen: Option<String>) -> Result<(), CliError> {
    let started = Instant::now();
    let listen = listen.unwrap_or_else(|| settings.api.listen.clone());
    let db = Database::open(&settings).await?;
    let result = serve(&settings, &db, &listen, started).await;
    db.close().await;
    result
}

async fn serve(settings: &Settings, db: &Database, listen: &str, started: Instant) -> Result<(), CliError> {
    spine_store::migrate::run(&db.pool).await.map_err(|e| CliError::failed(format!("migrations failed: {e}")))?;
    let store = Store::new(db.pool.clone());
    let vault_keys = std::sync::Arc::new(crate::commands::vault::keyring_for_up(settings, &store).await?);
    let signer = session_signer(settings)?;
    let blobs = crate::commands::fsck::open_blobs(settings).await?;
    let registrar = Registrar::new(store.clone(), blobs.clone(), Some(settings.blobs.max_upload_bytes));
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        CliError::failed(format!("cannot listen on {listen}: {e}"))
            .hint("choose another address with --listen or SPINE_API__LISTEN")
    })?;
    let addr = listener.local_addr().map_err(|e| CliError::failed(e.to_string()))?;
    if let Some((tenant, key)) = admin::bootstrap(&store).await? {
        output::text(&format!(
            "First run: created tenant `{}` ({}).\nAdmin API key (shown once, store it now):\n  {}",
            tenant.slug,
            tenant.id,
            key.key.expose()
        ));
    }
    let state = AppState {
        store: store.clone(),
        signer,
        config: ApiConfig {
            max_body_bytes: settings.api.max_body_bytes,
            request_timeout: Duration::from_secs(settings.api.request_timeout_secs),
            session_ttl: Duration::from_secs(settings.auth.session_ttl_secs),
        },
        metrics: None,
        registrar: Some(registrar.clone()),
        keyring: Some(vault_keys.clone()),
    };
    let url = format!("http://{addr}");
    let mut supervisor = Supervisor::new();
    let mut state = state;
    if settings.jobs.run_in_up {
        let stats = crate::commands::worker::spawn(&mut supervisor, &db.pool, settings, &Default::default(), blobs)?;
        state.metrics = Some(std::sync::Arc::new(move || stats.render_prometheus()));
    }
    let heartbeat = Heartbeat::new(
        store.clone(),
        HeartbeatConfig { hostname: hostname(), endpoint_url: url.clone(), interval: Duration::from_secs(60) },
    );
    supervisor.spawn("heartbeat", |s| heartbeat.run(s));
    let keeper = StatisticsKeeper::new(db.pool.clone());
    supervisor.spawn("statistics", |s| keeper.run(s));
    let refresher = spine_pipeline::connectors::oauth_refresh::OAuthRefresher::new(
        store.clone(),
        vault_keys,
        Duration::from_secs(60),
    );
    supervisor.spawn("oauth-refresh", |s| refresher.run(s));
    let folders = spine_connectors::inbox::resolve(&settings.inbox, &settings.data_dir, &store).await.map_err(|e| {
        CliError::config(format!("inbox: {e}")).hint("see [inbox] in the configuration table of README.md")
    })?;
    if !folders.is_empty() {
        for f in &folders {
            output::text(&format!("Watching {} for tenant {}", f.path.display(), f.tenant_slug));
        }
        let watcher =
            spine_connectors::inbox::InboxWatcher::new(registrar.clone(), store.clone(), folders, &hostname());
        supervisor.spawn("inbox", move |s| watcher.run(s));
    }
    output::text(&format!("Spine is up at {url} (database: {})", db.location));
    tracing::info!(%url, database = %db.location, startup_ms = started.elapsed().as_millis() as u64, "spine up");
    let served = axum::serve(listener, spine_api::router(state)).with_graceful_shutdown(shutdown_signal()).await;
    tracing::info!("shutting down");
    supervisor.shutdown().await;
    served.map_err(|e| CliError::failed(format!("server error: {e}")))
}

pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The configured session secret, or one generated on first use and kept in `data_dir`.
pub fn session_signer(settings: &Settings) -> Result<SessionSigner, CliError> {
    if let Some(s) = &settings.auth.session_secret {
        if s.expose().len() < 32 {
            return Err(CliError::config("auth.session_secret must be at least 32 bytes"));
        }
        return Ok(SessionSigner::new(Secret::new(s.expose().as_bytes().to_vec())));
    }
    let path = settings.data_dir.join("session.key");
    Ok(SessionSigner::new(Secret::new(load_or_create_key(&path)?)))
}

fn load_or_create_key(path: &Path) -> Result<Vec<u8>, CliError> {
    if let Ok(k) = std::fs::read(path)
        && k.len() >= 32
    {
        return Ok(k);
    }
    let fail = |e: std::io::Error| CliError::failed(format!("session key {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut key = vec![0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key)).map_err(fail)?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(fail)?;
        f.write_all(&key).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(key)
}
