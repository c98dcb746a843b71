//! Users: created by a tenant's admins into their tenant; sign-in issues a session token.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use chrono::Utc;
use spine_core::auth::{Claims, PasswordError, Role, Scope, hash_password, verify_password};
use spine_core::error_code::ErrorCode;
use spine_core::ids::TenantId;
use spine_core::names::{DisplayName, EmailAddress};
use spine_core::secret::Secret;
use spine_store::repos::{audit, tenants, users};
use uuid::Uuid;

use crate::dto::{CreateUser, Login, Member, Session};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, Auth};
use crate::middleware::RequestId;
use crate::state::AppState;

/// A hash of a random password, verified against when the email is unknown so that both failure
/// paths cost the same. Made once per process with the same parameters as real hashes.
fn decoy_hash() -> String {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            let random = Secret::new(Uuid::new_v4().to_string());
            hash_password(&random).unwrap_or_default()
        })
        .clone()
}

fn bad_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong email or password")
}

async fn verify_blocking(password: Secret<String>, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false)
}

/// Sign in with email and password; returns a bearer session token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Session), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    AppJson(body): AppJson<Login>,
) -> ApiResult<Json<Session>> {
    let password = Secret::new(body.password);
    let email = EmailAddress::parse(&body.email).ok();
    let found = match &email {
        Some(e) => {
            let mut tx = state.store.system_tx().await?;
            let found = users::find_for_login(&mut tx, e).await?;
            tx.commit().await?;
            found
        }
        None => None,
    };
    // The hash is checked with no connection held: a burst of sign-ins must not drain the pool.
    let (user, ok) = match found {
        Some((user, hash)) => {
            let ok = verify_blocking(password, hash).await;
            (Some(user), ok)
        }
        None => {
            let decoy = tokio::task::spawn_blocking(decoy_hash).await.unwrap_or_default();
            verify_blocking(password, decoy).await;
            (None, false)
        }
    };
    let mut tx = state.store.system_tx().await?;
    let user = match user {
        Some(u) if ok => u,
        other => {
            audit::record(
                tx.conn(),
                audit::AuditEvent {
                    tenant: None,
                    actor_kind: if other.is_some() { "user" } else { "anonymous" },
                    actor_id: user_id_or_email(&other, &email),
                    action: "auth.login",
                    success: false,
                    target_kind: None,
                    target_id: None,
                    request_id: Some(rid.0.clone()),
                    details: serde_json::json!({ "reason": "bad credentials" }),
                },
            )
            .await?;
            tx.commit().await?;
            return Err(bad_credentials());
        }
    };
    let memberships = users::memberships(&mut tx, user.id).await?;
    let chosen: Option<(Uuid, Role, String)> = match &body.tenant {
        Some(wanted) => {
            let t = tenants::find(&mut tx, wanted).await.ok();
            match t.and_then(|t| memberships.iter().find(|m| m.0 == t.id).cloned()) {
                Some(m) => Some(m),
                None => return Err(ApiError::forbidden("membership in that tenant")),
            }
        }
        // The oldest membership in an active tenant; a suspended one only if there is no other.
        None => memberships.iter().find(|m| m.2 == "active").or(memberships.first()).cloned(),
    };
    if let Some((_, _, status)) = &chosen
        && status != "active"
    {
        return Err(ApiError::new(ErrorCode::TenantSuspended, "that tenant is suspended"));
    }
    let now = Utc::now();
    let expires_at = now + state.config.session_ttl;
    let claims = Claims {
        sub: user.id,
        tid: chosen.as_ref().map(|m| m.0),
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
        jti: Uuid::now_v7(),
    };
    let token = state.signer.sign(&claims);
    users::record_login(&mut tx, user.id).await?;
    audit::record(
        tx.conn(),
        audit::AuditEvent {
            tenant: chosen.as_ref().map(|m| TenantId(m.0)),
            actor_kind: "user",
            actor_id: Some(user.id.to_string()),
            action: "auth.login",
            success: true,
            target_kind: None,
            target_id: None,
            request_id: Some(rid.0),
            details: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Session {
        token: token.expose().clone(),
        expires_at,
        user_id: user.id,
        tenant_id: claims.tid,
        role: chosen.map(|m| m.1),
    }))
}

fn user_id_or_email(user: &Option<users::User>, email: &Option<EmailAddress>) -> Option<String> {
    match (user, email) {
        (Some(u), _) => Some(u.id.to_string()),
        (None, Some(e)) => Some(e.to_string()),
        _ => None,
    }
}

/// Create a user with a role in the caller's tenant (admin scope).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = Member), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Extension(rid): Extension<RequestId>,
    AppJson(body): AppJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let tenant = auth.require_scope(Scope::Admin)?;
    let email = EmailAddress::parse(&body.email)?;
    let name = DisplayName::parse("display_name", &body.display_name)?;
    let password = Secret::new(body.password);
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::internal("hashing task failed", e))?
        .map_err(|e| match e {
            PasswordError::Policy => ApiError::new(ErrorCode::InvalidRequest, format!("password: {e}"))
                .with_details(serde_json::json!({ "field": "password" })),
            other => ApiError::internal("password hashing", other),
        })?;
    let actor = auth.0.actor_ref();
    let mut tx = state.store.system_tx().await?;
    let user = users::create(
        &mut tx,
        users::NewUser {
            email: &email,
            display_name: &name,
            password_hash: &hash,
            platform_admin: false,
            created_by: &actor,
        },
    )
    .await?;
    users::add_membership(&mut tx, tenant, user.id, body.role, &actor).await?;
    let event = auth.audit_event(
        tenant,
        "user.create",
        "user",
        user.id.to_string(),
        rid,
        serde_json::json!({ "role": body.role.as_str() }),
    );
    audit::record(tx.conn(), event).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Member {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            role: body.role.as_str().into(),
            created_at: user.created_at,
        }),
    ))
}

/// Members of the caller's tenant (admin scope).
#[utoipa::path(get, path = "/v1/users", tag = "users",
    responses((status = 200, body = Vec<Member>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<Member>>> {
    let tenant = auth.require_scope(Scope::Admin)?;
    let mut tx = state.store.tenant_tx(tenant).await?;
    let rows = users::list_members(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}
