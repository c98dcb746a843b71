//! spine-pipeline: the runtime that background work runs in. Today it holds the supervisor that
//! `spine up` starts its workers under, and the self-registration worker that records Spine in
//! qiserver; the job engine, registration and promotion steps join it in later issues.

mod heartbeat;
mod supervisor;

pub use heartbeat::{Heartbeat, HeartbeatConfig};
pub use supervisor::{Shutdown, Supervisor};
