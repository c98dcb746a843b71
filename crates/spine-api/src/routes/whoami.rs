//! Who the credential belongs to.

use axum::Json;

use crate::dto::WhoAmI;
use crate::error::ErrorBody;
use crate::extract::Auth;
use spine_core::auth::{Principal, Scope};

/// Describe the caller's credential.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn whoami(auth: Auth) -> Json<WhoAmI> {
    let p = &auth.0;
    let (kind, id) = p.actor();
    let scopes = Scope::ALL.iter().filter(|s| p.has_scope(**s)).map(|s| s.as_str().to_owned()).collect();
    let (role, platform_admin) = match p {
        Principal::User { role, platform_admin, .. } => (*role, *platform_admin),
        Principal::Service { .. } => (None, true),
        Principal::ApiKey { .. } => (None, false),
    };
    Json(WhoAmI { kind: kind.into(), id, tenant_id: p.tenant().map(|t| t.as_uuid()), scopes, role, platform_admin })
}
