//! The API's one error type and body: `{ "code", "message", "details" }`, with the code from the
//! stable table in `spine_core::error_code`. Internal errors are logged once here, with the
//! request's span, and the caller sees only an opaque message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use spine_core::error_code::ErrorCode;
use spine_core::names::InvalidValue;
use spine_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
}

/// The error body, as documented in the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (see docs/errors.md).
    pub code: &'static str,
    /// Human-readable explanation; may change between versions.
    pub message: String,
    /// Extra structured context, such as the offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            "a valid credential is required (Authorization: Bearer <api key or session token>)",
        )
    }
    pub fn forbidden(what: &str) -> Self {
        Self::new(ErrorCode::Forbidden, format!("this credential lacks {what}"))
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(ErrorCode::Internal, "internal error; see the server log for this request id")
    }
}

impl From<InvalidValue> for ApiError {
    fn from(e: InvalidValue) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, e.to_string()).with_details(serde_json::json!({ "field": e.field }))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::Conflict(what) => ApiError::new(ErrorCode::Conflict, what),
            StoreError::Invalid(what) => ApiError::new(ErrorCode::InvalidRequest, what),
            other => ApiError::internal("store error", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody { code: self.code.as_str(), message: self.message, details: self.details };
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
