//! The daemon runtime: the handler registry (which event becomes which tasks, who runs each
//! task type, with which options), typed handlers, and the loops that dispatch events and run
//! tasks. It depends on the `ports` traits only: `crate::runtime` wires the adapters in.

mod completer;
pub mod daemon;
pub mod daily;
mod dispatch;
mod health;
mod heartbeat;
mod in_flight;
mod maintenance;
pub mod registry;
pub mod typed;
mod wake;
mod workers;

pub use daemon::{Daemon, DaemonConfig};
pub use daily::{Daily, DailyJob, Schedule};
pub use health::DaemonHealth;
pub use maintenance::{ALIVE_WITHIN, BEAT_EVERY};
pub use registry::{Registry, RegistryError, TaskError, TaskHandler, TaskOptions};
pub use typed::Handler;
pub use wake::Wakers;
