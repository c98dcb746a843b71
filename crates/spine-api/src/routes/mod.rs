//! One file per resource.

pub mod connections;
pub mod connector_types;
pub mod files;
pub mod health;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod provenance;
pub mod registry;
pub mod review;
pub mod schedules;
pub mod tenants;
pub mod users;
pub mod whoami;
