//! One file per resource.

pub mod health;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod registry;
pub mod schedules;
pub mod tenants;
pub mod users;
pub mod whoami;
