//! Campus adapters: the outside world behind the ports.
//!
//! - `pg`: PostgreSQL via sqlx — repositories that save rows and their events in one
//!   transaction, the event store and task queue, the debounced NOTIFY sender and the LISTEN
//!   side.
//! - `memory`: every port over one in-memory state, with a manual clock (tests, no database).
//! - `conformance` (tests and the `conformance` feature): the engine's contract, one suite
//!   run against every adapter set.
//! - `bus`: the event bus over RabbitMQ (lapin) — the publisher behind `EventBus` and the
//!   consumer library other services use.
//! - `mail`: SMTP (lettre on tokio) and the file-based dev mailbox.
//! - `security`: argon2 password hashing, reset-token minting/sealing, clock and ids.
//! - `dto`: JSON shapes of domain events (what handlers and the admin read).
//! - `keys`: the server's key ring; `files`: owner-only files for generated secrets.

pub mod bus;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod dto;
pub mod files;
pub mod keys;
pub mod mail;
pub mod memory;
pub mod pg;
pub mod security;
pub mod telemetry;
pub mod webhooks;
