//! spine-api: the HTTP API (axum). Thin handlers: extract and validate, call the store, map to DTOs.

mod dto;
pub mod error;
mod extract;
mod middleware;
pub mod openapi;
mod routes;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};

pub use state::{ApiConfig, AppState, MetricsRender};

/// The whole API, with its middleware (request ids, spans, body limit, timeout, error shapes).
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/tenants", post(routes::tenants::create).get(routes::tenants::list))
        .route("/tenants/{tenant}", patch(routes::tenants::update))
        .route("/tenants/{tenant}/keys", post(routes::tenants::create_key))
        .route("/tenant", get(routes::tenants::current))
        .route("/auth/login", post(routes::users::login))
        .route("/users", post(routes::users::create).get(routes::users::list))
        .route("/keys", post(routes::keys::create).get(routes::keys::list))
        .route("/keys/{id}", delete(routes::keys::revoke))
        .route("/whoami", get(routes::whoami::whoami))
        .route("/jobs", get(routes::jobs::list))
        .route("/jobs/stats", get(routes::jobs::stats))
        .route("/jobs/actions/{action}", post(routes::jobs::act_many))
        .route("/jobs/{id}", get(routes::jobs::show))
        .route("/jobs/{id}/{action}", post(routes::jobs::act_one))
        .route("/schedules", get(routes::schedules::list).post(routes::schedules::create))
        .route("/schedules/{id}", get(routes::schedules::show).delete(routes::schedules::delete))
        .route("/schedules/{id}/{action}", post(routes::schedules::act))
        .route("/registry/schemas", get(routes::registry::schemas))
        .route("/registry/tables", get(routes::registry::tables))
        .route("/registry/fields", get(routes::registry::fields))
        .route("/files/{id}", get(routes::files::show))
        .route("/batches/{id}", get(routes::files::batch))
        .route("/batches/{id}/approve", post(routes::review::bulk_approve))
        .route("/batches/{id}/promote", post(routes::review::promote))
        .route("/review", get(routes::review::list))
        .route("/review/{id}", get(routes::review::show))
        .route("/review/{id}/mapping", put(routes::review::edit))
        .route("/review/{id}/{decision}", post(routes::review::decide))
        .route("/provenance/{id}", get(routes::provenance::show))
        .route("/connector-types", get(routes::connector_types::list))
        .route("/connector-types/{name}", get(routes::connector_types::show))
        .route("/connections", get(routes::connections::list).post(routes::connections::create))
        .route(
            "/connections/{id}",
            get(routes::connections::show).patch(routes::connections::update).delete(routes::connections::delete),
        )
        .route("/connections/{id}/disable", post(routes::connections::disable))
        .route("/connections/{id}/enable", post(routes::connections::enable))
        .route("/connections/{id}/test", post(routes::connections::checks::test))
        .route("/connections/{id}/health", get(routes::connections::checks::health))
        .route("/connections/{id}/health/history", get(routes::connections::checks::history))
        .route("/connections/{id}/events", get(routes::connections::events::events))
        .route("/connections/{id}/rate-limit", get(routes::connections::events::rate_limit))
        .route("/connections/{id}/oauth/start", post(routes::connections::oauth::start))
        .route("/oauth/callback", get(routes::connections::oauth::callback));
    let body_limit = state.config.max_body_bytes;
    let timeout = state.config.request_timeout;
    // Uploads stream any size (the registrar enforces blobs.max_upload_bytes) for as long as
    // they take, so they sit outside the JSON body limit and the request timeout.
    let uploads = Router::new().route("/v1/files", post(routes::files::upload)).layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/openapi.json", get(openapi::serve))
        .route("/metrics", get(routes::metrics::metrics))
        .nest("/v1", v1)
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |req, next| middleware::timeout(timeout, req, next)))
        .merge(uploads)
        .layer(axum::middleware::from_fn(middleware::request_span))
        .with_state(state)
}

/// Only `/healthz` and `/metrics`: what a `spine worker` process serves for scraping.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::metrics::metrics))
        .fallback(middleware::not_found)
        .with_state(state)
}
