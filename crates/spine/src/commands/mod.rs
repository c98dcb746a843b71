//! One file per command group.

pub mod admin;
pub mod governance;
pub mod jobs;
pub mod schedules;
pub mod up;
pub mod worker;
