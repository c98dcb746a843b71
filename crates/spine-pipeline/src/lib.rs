//! spine-pipeline: the runtime background work runs in: the supervisor, the job worker, the cron
//! scheduler, the janitor that prunes finished jobs, the keeper of planner statistics, and
//! Spine's own heartbeat in qiserver.
//! Registration, staging and promotion steps join it as job kinds.

pub mod builtin;
pub mod connectors;
pub mod cron;
mod heartbeat;
mod janitor;
pub mod process;
pub mod profiles;
pub mod ratelimit;
pub mod register;
pub mod review;
pub mod staging;
mod statistics;
mod supervisor;
pub mod worker;

pub use heartbeat::{Heartbeat, HeartbeatConfig};
pub use janitor::Janitor;
pub use statistics::StatisticsKeeper;
pub use supervisor::{Shutdown, Supervisor};
