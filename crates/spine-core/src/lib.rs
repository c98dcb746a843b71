//! spine-core: the types every other crate shares. No I/O: no database, no network, no files.
//! Values are parsed at the edge into these types and travel inward already validated.

pub mod auth;
pub mod connector;
pub mod cron;
pub mod error_code;
pub mod file_name;
pub mod governance;
pub mod http_class;
pub mod identifier;
pub mod ids;
pub mod jobs;
pub mod media_type;
pub mod names;
pub mod secret;
pub mod vault;
