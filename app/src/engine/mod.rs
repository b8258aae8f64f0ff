//! The daemon runtime: the handler registry (which event becomes which tasks, and who runs
//! each task type) and the loops that dispatch events and run tasks.

pub mod daemon;
pub mod registry;

pub use daemon::{Daemon, DaemonConfig};
pub use registry::{Registry, TaskError, TaskHandler};
