//! Extractors whose rejections use the API error shape, and the authentication extractor that
//! turns a bearer credential into a `Principal` (the only source of a request's tenant).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use spine_core::auth::{KeyKind, PresentedKey, Principal, Role, Scope};
use spine_core::error_code::ErrorCode;
use spine_core::ids::{KeyId, TenantId, UserId};
use spine_store::repos::{keys, users};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::AppState;

/// `Json<T>` with our error shape: 415 without a JSON content type, 413 past the body limit,
/// 400 for syntax errors, unknown fields or wrong types.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a body with Content-Type: application/json",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(ErrorCode::PayloadTooLarge, "request body is larger than the configured limit"))
            }
            Err(e) => Err(ApiError::new(ErrorCode::InvalidJson, e.body_text())),
        }
    }
}

/// `Path<T>` with our error shape (400 for a malformed id).
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| AppPath(p.0))
            .map_err(|e: PathRejection| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))
    }
}

/// `Query<T>` with our error shape.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))
    }
}

/// The authenticated caller. Records the tenant in the request span.
pub struct Auth(pub Principal);

impl Auth {
    pub fn require_scope(&self, scope: Scope) -> Result<TenantId, ApiError> {
        match self.0.tenant() {
            Some(t) if self.0.has_scope(scope) => Ok(t),
            _ => Err(ApiError::forbidden(&format!("the {scope} scope in a tenant"))),
        }
    }
    /// The caller's tenant when it holds any of `scopes`.
    pub fn require_any_scope(&self, scopes: &[Scope]) -> Result<TenantId, ApiError> {
        match self.0.tenant() {
            Some(t) if scopes.iter().any(|s| self.0.has_scope(*s)) => Ok(t),
            _ => {
                let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                Err(ApiError::forbidden(&format!("one of the scopes {} in a tenant", names.join(", "))))
            }
        }
    }
    /// A successful audit event with this caller as the actor.
    pub fn audit_event<'a>(
        &self,
        tenant: TenantId,
        action: &'a str,
        target_kind: &'a str,
        target_id: String,
        request: RequestId,
        details: serde_json::Value,
    ) -> spine_store::repos::audit::AuditEvent<'a> {
        let (actor_kind, actor_id) = self.0.actor();
        spine_store::repos::audit::AuditEvent {
            tenant: Some(tenant),
            actor_kind,
            actor_id: Some(actor_id),
            action,
            success: true,
            target_kind: Some(target_kind),
            target_id: Some(target_id),
            request_id: Some(request.0),
            details,
        }
    }

    pub fn require_platform(&self) -> Result<(), ApiError> {
        if self.0.is_platform() {
            Ok(())
        } else {
            Err(ApiError::forbidden("the service role or platform admin rights"))
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthenticated)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthenticated)?;
        let principal = match PresentedKey::parse(token) {
            Some(key) => authenticate_key(state, key).await?,
            None => authenticate_session(state, token).await?,
        };
        let span = tracing::Span::current();
        if let Some(t) = principal.tenant() {
            span.record("tenant_id", tracing::field::display(t));
        }
        span.record("principal", tracing::field::display(principal.actor_ref()));
        Ok(Auth(principal))
    }
}

async fn authenticate_key(state: &AppState, key: PresentedKey) -> Result<Principal, ApiError> {
    let row = keys::lookup(&state.store, &key.prefix).await?.ok_or_else(ApiError::unauthenticated)?;
    if row.key_hash.as_slice().ct_eq(&key.hash).unwrap_u8() != 1 || !row.active {
        return Err(ApiError::unauthenticated());
    }
    if !row.tenant_active {
        return Err(ApiError::new(ErrorCode::TenantSuspended, "the tenant of this key is suspended"));
    }
    if row.stale {
        keys::touch(&state.store, &key.prefix).await?;
    }
    Ok(match key.kind {
        KeyKind::Service => Principal::Service { key_id: KeyId(row.id), key_prefix: key.prefix },
        KeyKind::Api => Principal::ApiKey {
            key_id: KeyId(row.id),
            key_prefix: key.prefix,
            tenant: TenantId(row.tenant_id.ok_or_else(ApiError::unauthenticated)?),
            scopes: row.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        },
    })
}

async fn authenticate_session(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let claims = state.signer.verify(token, now).map_err(|_| ApiError::unauthenticated())?;
    let mut tx = state.store.system_tx().await?;
    let user = users::get(&mut tx, claims.sub).await.map_err(|_| ApiError::unauthenticated())?;
    if user.status != "active" {
        return Err(ApiError::unauthenticated());
    }
    // The role is read now, not from the token, so a removed membership takes effect at once.
    let mut role: Option<Role> = None;
    if let Some(tid) = claims.tid {
        let m = users::memberships(&mut tx, user.id).await?;
        match m.into_iter().find(|(t, _, _)| *t == tid) {
            Some((_, r, status)) if status == "active" => role = Some(r),
            Some(_) => {
                return Err(ApiError::new(ErrorCode::TenantSuspended, "the tenant of this session is suspended"));
            }
            None if user.is_platform_admin => {}
            None => return Err(ApiError::unauthenticated()),
        }
    }
    tx.commit().await?;
    Ok(Principal::User {
        user_id: UserId(user.id),
        tenant: claims.tid.map(TenantId),
        role,
        platform_admin: user.is_platform_admin,
    })
}
