//! One file per aggregate. Tenant-owned data is reached only through a `TenantTx`; functions that
//! take a `SystemTx` are the authentication and platform-administration paths.

pub mod audit;
pub mod connection_health;
pub mod connections;
pub mod inbox;
pub mod keys;
pub mod oauth;
pub mod processing;
pub mod promotion;
pub mod provenance;
pub mod rate_limits;
pub mod registration;
mod registration_rows;
pub mod registry;
pub mod review;
pub mod runtime;
pub mod staging;
pub mod tenants;
pub mod users;
