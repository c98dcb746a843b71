//! Request ids, the request span (with request id and, once authenticated, tenant id), the
//! timeout, and error-shaped fallbacks.

use std::time::Duration;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spine_core::error_code::ErrorCode;
use tracing::Instrument;

use crate::error::ApiError;

pub const REQUEST_ID: &str = "x-request-id";

/// Takes the caller's `x-request-id` when it is short and printable, otherwise mints one; opens
/// the request span; echoes the id on the response; logs one line per request.
pub async fn request_span(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        tenant_id = tracing::field::Empty,
        principal = tracing::field::Empty,
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.in_scope(|| {
        tracing::info!(status, elapsed_ms = started.elapsed().as_millis() as u64, "request finished");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// The request id, for handlers that write it into audit rows.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

pub async fn timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(ErrorCode::Timeout, format!("the request took longer than {} s", limit.as_secs()))
            .into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method")
}
