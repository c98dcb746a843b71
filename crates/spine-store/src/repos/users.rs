//! core.users, their memberships (qisystem.tenant_memberships) and password hashes
//! (qivault.password_credentials). Users are platform-wide, so writes run on a `SystemTx`;
//! the tenant a membership is for always comes from the caller's principal.

use chrono::{DateTime, Utc};
use spine_core::auth::Role;
use spine_core::ids::{TenantId, UserId};
use spine_core::names::{DisplayName, EmailAddress};
use uuid::Uuid;

use crate::{StoreError, SystemTx, TenantTx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub is_platform_admin: bool,
    pub status: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A user as seen from one tenant: with their role there.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Member {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "id, email, display_name, is_platform_admin, status, last_login_at, created_at";

pub struct NewUser<'a> {
    pub email: &'a EmailAddress,
    pub display_name: &'a DisplayName,
    pub password_hash: &'a str,
    pub platform_admin: bool,
    pub created_by: &'a str,
}

pub async fn create(tx: &mut SystemTx, u: NewUser<'_>) -> Result<User, StoreError> {
    let user: User = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO core.users (id, email, display_name, is_platform_admin, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLS}"
    )))
    .bind(UserId::new().as_uuid())
    .bind(u.email.as_str())
    .bind(u.display_name.as_str())
    .bind(u.platform_admin)
    .bind(u.created_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "a user with this email already exists"))?;
    sqlx::query("INSERT INTO qivault.password_credentials (user_id, password_hash) VALUES ($1, $2)")
        .bind(user.id)
        .bind(u.password_hash)
        .execute(tx.conn())
        .await?;
    Ok(user)
}

pub async fn add_membership(
    tx: &mut SystemTx,
    tenant: TenantId,
    user: Uuid,
    role: Role,
    created_by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO qisystem.tenant_memberships (tenant_id, user_id, role, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(tenant.as_uuid())
    .bind(user)
    .bind(role.as_str())
    .bind(created_by)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::on_constraint(e, "membership"))?;
    Ok(())
}

/// For sign-in: the active user with this email and their password hash.
pub async fn find_for_login(tx: &mut SystemTx, email: &EmailAddress) -> Result<Option<(User, String)>, StoreError> {
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT u.id, c.password_hash FROM core.users u JOIN qivault.password_credentials c ON c.user_id = u.id
         WHERE u.email = $1 AND u.status = 'active'",
    )
    .bind(email.as_str())
    .fetch_optional(tx.conn())
    .await?;
    let Some((id, hash)) = row else { return Ok(None) };
    Ok(Some((get(tx, id).await?, hash)))
}

pub async fn get(tx: &mut SystemTx, id: Uuid) -> Result<User, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM core.users WHERE id = $1")))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)
}

/// The tenants a user belongs to, with role and tenant status, oldest membership first.
pub async fn memberships(tx: &mut SystemTx, user: Uuid) -> Result<Vec<(Uuid, Role, String)>, StoreError> {
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT m.tenant_id, m.role, t.status FROM qisystem.tenant_memberships m JOIN core.tenants t ON t.id = m.tenant_id
         WHERE m.user_id = $1 ORDER BY m.created_at, m.tenant_id",
    )
    .bind(user)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(|(t, r, s)| Ok((t, r.parse().map_err(StoreError::Invalid)?, s))).collect()
}

pub async fn record_login(tx: &mut SystemTx, user: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE core.users SET last_login_at = now() WHERE id = $1").bind(user).execute(tx.conn()).await?;
    Ok(())
}

/// Members of the transaction's tenant.
pub async fn list_members(tx: &mut TenantTx) -> Result<Vec<Member>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.email, u.display_name, m.role, m.created_at
         FROM qisystem.tenant_memberships m JOIN core.users u ON u.id = m.user_id
         ORDER BY m.created_at, u.id",
    )
    .fetch_all(tx.conn())
    .await?)
}
