//! One file per aggregate. Tenant-owned data is reached only through a `TenantTx`; functions that
//! take a `SystemTx` are the authentication and platform-administration paths.

pub mod audit;
pub mod keys;
pub mod registry;
pub mod runtime;
pub mod staging;
pub mod tenants;
pub mod users;
