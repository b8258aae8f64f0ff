//! The ports' single error type. Adapters map infrastructure errors into it at their boundary.

use campus_core::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The entity does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule or a concurrent change prevented the write.
    #[error("{0}")]
    Conflict(String),
    /// A domain rule refused the change.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The infrastructure failed (database down, SMTP refused, …). The message is safe to log
    /// and never contains secrets.
    #[error("infrastructure unavailable: {0}")]
    Unavailable(String),
    /// Too much of this work is already waiting; the caller should try again shortly.
    #[error("busy: {0}")]
    Busy(String),
}
