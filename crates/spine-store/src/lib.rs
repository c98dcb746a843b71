//! spine-store: the only crate that speaks SQL. Tenant-scoped work goes through [`Store::tenant_tx`],
//! which runs the transaction as the row-level-security-bound `spine_app` role with the tenant set
//! from the authenticated identity; [`Store::system_tx`] is for authentication and platform
//! administration and is never handed to request handlers.

pub mod blob;
pub mod embedded;
mod error;
pub mod governance;
pub mod migrate;
pub mod nodelay;
pub mod queue;
pub mod repos;
mod scope;
pub mod statistics;
pub mod vault;

pub use error::StoreError;
pub use scope::{AnyTx, ReadTx, Store, SystemTx, TenantTx};
