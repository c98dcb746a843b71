//! Transactions with a tenant scope. `TenantTx` can only be made from a `TenantId`, and it
//! switches to the `spine_app` role so the database enforces isolation even if a query forgets to.

use spine_core::ids::TenantId;
use sqlx::{PgPool, Postgres, Transaction};

use crate::StoreError;

/// The pool plus the entry points for scoped transactions.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

/// A transaction bound to one tenant, running as `spine_app` (RLS applies).
pub struct TenantTx {
    pub(crate) tx: Transaction<'static, Postgres>,
    tenant: TenantId,
    /// The role the transaction runs as (`spine_app` or `spine_ingest`).
    role: &'static str,
}

/// A read-only transaction as `spine_app` with no tenant set: platform-wide tables (the registry)
/// are readable, every tenant-owned row is invisible.
pub struct ReadTx {
    pub(crate) tx: Transaction<'static, Postgres>,
}

/// A transaction with the connecting role's rights: authentication lookups and platform
/// administration only.
pub struct SystemTx {
    pub(crate) tx: Transaction<'static, Postgres>,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn tenant_tx(&self, tenant: TenantId) -> Result<TenantTx, StoreError> {
        self.scoped_tx(tenant, "spine_app", "").await
    }

    /// A tenant transaction for ingress code, as the role `spine_ingest`: it may write capture,
    /// file/batch and staging tables and enqueue jobs, and nothing canonical (decision 0018).
    pub async fn ingest_tx(&self, tenant: TenantId) -> Result<TenantTx, StoreError> {
        self.scoped_tx(tenant, "spine_ingest", "").await
    }

    /// [`Store::ingest_tx`] whose statements run with generic plans (`plan_cache_mode`), for
    /// registration: PostgreSQL plans a statement with an array parameter afresh on every run
    /// (its generic plan looks dearer than a custom one for a one-element array), and for the
    /// hash lookup of a small group that planning cost several times its execution.
    pub async fn ingest_tx_generic_plans(&self, tenant: TenantId) -> Result<TenantTx, StoreError> {
        self.scoped_tx(tenant, "spine_ingest", "; SET LOCAL plan_cache_mode = force_generic_plan").await
    }

    async fn scoped_tx(
        &self,
        tenant: TenantId,
        role: &'static str,
        more: &'static str,
    ) -> Result<TenantTx, StoreError> {
        // One round trip: BEGIN and the settings as one simple query. The role is one of ours
        // and the tenant a UUID (hex and dashes), so nothing here needs quoting.
        let tx = self
            .pool
            .begin_with(sqlx::AssertSqlSafe(format!(
                "BEGIN; SET LOCAL ROLE {role}; SET LOCAL spine.tenant_id = '{tenant}'{more}"
            )))
            .await?;
        Ok(TenantTx { tx, tenant, role })
    }

    pub async fn read_tx(&self) -> Result<ReadTx, StoreError> {
        let tx =
            self.pool.begin_with("BEGIN READ ONLY; SET LOCAL ROLE spine_app; SET LOCAL spine.tenant_id = ''").await?;
        Ok(ReadTx { tx })
    }

    pub async fn system_tx(&self) -> Result<SystemTx, StoreError> {
        Ok(SystemTx { tx: self.pool.begin().await? })
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

impl TenantTx {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The role the transaction runs as, for a statement that must leave it and come back
    /// (the staging COPY).
    pub(crate) fn role(&self) -> &'static str {
        self.role
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Rolls back now, releasing the transaction's locks before the caller goes on (a dropped
    /// transaction is rolled back only once its connection is back in the pool).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// The underlying connection, for repositories in this crate and for later crates' enqueue
    /// calls that must share the transaction.
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }
}

impl SystemTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }
}

impl ReadTx {
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }
}

/// A tenant transaction or, for the service role's cross-tenant operations, a system one. For
/// functions that take a connection and work either way (the job admin functions).
pub enum AnyTx {
    Tenant(TenantTx),
    System(SystemTx),
}

impl AnyTx {
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        match self {
            AnyTx::Tenant(t) => t.conn(),
            AnyTx::System(s) => s.conn(),
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            AnyTx::Tenant(t) => t.commit().await,
            AnyTx::System(s) => s.commit().await,
        }
    }
}
