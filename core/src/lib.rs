//! Campus domain core.
//!
//! Owns the academic aggregates (institutions, users, reset-password tokens, disciplines,
//! classes, enrollments with exam grade notes, notifications) and the past-tense events they
//! record, plus the pure rules of the event/task engine (`engine`). It depends on nothing but
//! `std`: ids are plain newtypes, time is passed in, JSON mapping lives in the adapters.

pub mod academic;
pub mod engine;
pub mod error;
pub mod events;
pub mod ids;
pub mod notification;
pub mod time;
pub mod user;
pub mod values;

pub use error::DomainError;
pub use events::DomainEvent;
pub use time::Timestamp;
