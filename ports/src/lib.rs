//! Ports: the traits Campus's use cases and daemon need from the outside world.
//!
//! Every trait is small, `Send + Sync`, and says which [`PortError`]s its methods return.
//! Adapters (PostgreSQL, SMTP, argon2, …) implement them; unit tests use the mockall mocks
//! behind the `mocks` feature.

pub mod admin;
pub mod bus;
pub mod coordination;
pub mod engine;
pub mod error;
pub mod gauges;
pub mod payloads;
pub mod repositories;
pub mod retention;
pub mod search;
pub mod services;
pub mod webhooks;

pub use admin::*;
pub use bus::*;
pub use coordination::*;
pub use engine::*;
pub use error::PortError;
pub use gauges::*;
pub use repositories::*;
pub use retention::*;
pub use search::*;
pub use services::*;
pub use webhooks::*;
