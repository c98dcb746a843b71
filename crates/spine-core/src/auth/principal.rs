//! The authenticated caller. Built only by the API's auth extractor from a verified credential.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{KeyId, TenantId, UserId};

/// What a credential may do. `admin` implies every other scope within its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    #[serde(rename = "ingest:write")]
    IngestWrite,
    #[serde(rename = "records:read")]
    RecordsRead,
    #[serde(rename = "review:write")]
    ReviewWrite,
    #[serde(rename = "connections:admin")]
    ConnectionsAdmin,
    #[serde(rename = "jobs:admin")]
    JobsAdmin,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::IngestWrite,
        Scope::RecordsRead,
        Scope::ReviewWrite,
        Scope::ConnectionsAdmin,
        Scope::JobsAdmin,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::IngestWrite => "ingest:write",
            Scope::RecordsRead => "records:read",
            Scope::ReviewWrite => "review:write",
            Scope::ConnectionsAdmin => "connections:admin",
            Scope::JobsAdmin => "jobs:admin",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s).ok_or_else(|| {
            let all: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown scope {s:?}; known scopes: {}", all.join(", "))
        })
    }
}

/// A user's role in a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// The scopes a role carries: owners everything, editors the day-to-day work, viewers read.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Owner => &[Scope::Admin],
            Role::Editor => &[Scope::IngestWrite, Scope::RecordsRead, Scope::ReviewWrite],
            Role::Viewer => &[Scope::RecordsRead],
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            _ => Err(format!("unknown role {s:?}; roles: owner, editor, viewer")),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The service role: server-to-server work across tenants.
    Service { key_id: KeyId, key_prefix: String },
    /// A tenant's scoped API key.
    ApiKey { key_id: KeyId, key_prefix: String, tenant: TenantId, scopes: Vec<Scope> },
    /// A signed-in user acting in one tenant (or none, for a platform admin without membership).
    User { user_id: UserId, tenant: Option<TenantId>, role: Option<Role>, platform_admin: bool },
}

impl Principal {
    /// The tenant the caller acts in; never taken from request parameters.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Principal::Service { .. } => None,
            Principal::ApiKey { tenant, .. } => Some(*tenant),
            Principal::User { tenant, .. } => *tenant,
        }
    }

    /// True when the caller holds `scope` in its tenant (`admin` implies all).
    pub fn has_scope(&self, scope: Scope) -> bool {
        let held: &[Scope] = match self {
            Principal::Service { .. } => return false,
            Principal::ApiKey { scopes, .. } => scopes,
            Principal::User { role: Some(r), .. } => r.scopes(),
            Principal::User { role: None, .. } => &[],
        };
        held.contains(&Scope::Admin) || held.contains(&scope)
    }

    /// Service role or platform admin: may manage tenants.
    pub fn is_platform(&self) -> bool {
        matches!(self, Principal::Service { .. } | Principal::User { platform_admin: true, .. })
    }

    /// For audit rows and `created_by` columns: (`kind`, `id`).
    pub fn actor(&self) -> (&'static str, String) {
        match self {
            Principal::Service { key_prefix, .. } => ("service", key_prefix.clone()),
            Principal::ApiKey { key_prefix, .. } => ("api_key", key_prefix.clone()),
            Principal::User { user_id, .. } => ("user", user_id.to_string()),
        }
    }

    /// `kind:id`, the form stored in created_by / updated_by.
    pub fn actor_ref(&self) -> String {
        let (k, id) = self.actor();
        format!("{k}:{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_admin_implies_all() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert!("write".parse::<Scope>().unwrap_err().contains("known scopes"));
        let admin = Principal::ApiKey {
            key_id: KeyId::new(),
            key_prefix: "sak_x".into(),
            tenant: TenantId::new(),
            scopes: vec![Scope::Admin],
        };
        assert!(Scope::ALL.iter().all(|s| admin.has_scope(*s)));
        let viewer = Principal::User {
            user_id: UserId::new(),
            tenant: Some(TenantId::new()),
            role: Some(Role::Viewer),
            platform_admin: false,
        };
        assert!(viewer.has_scope(Scope::RecordsRead));
        assert!(!viewer.has_scope(Scope::IngestWrite));
        assert!(!viewer.is_platform());
    }
}
