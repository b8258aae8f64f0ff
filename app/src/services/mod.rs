//! Use cases, written against the ports only (mocked in unit tests).
//!
//! `AppError` is the application layer's one error type; the API maps it to HTTP.

pub mod academic;
pub mod accounts;
pub mod archive;
pub mod operations;
pub mod sessions;
pub mod webhooks;

pub use academic::AcademicService;
pub use accounts::AccountService;
pub use archive::ArchiveService;
pub use operations::OperationsService;
pub use sessions::SessionService;
pub use webhooks::WebhookService;

use campus_core::DomainError;
use campus_ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input or a domain rule said no (400).
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// Bad credentials or token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// Not found or not visible to the caller (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with existing data (409).
    #[error("{0}")]
    Conflict(String),
    /// Infrastructure failure (503); details are logged, not returned.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// Too much work of this kind is waiting (503 with `Retry-After`); try again shortly.
    #[error("{0}")]
    Busy(String),
}

impl From<PortError> for AppError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::NotFound(what) => AppError::NotFound(what),
            PortError::Conflict(m) => AppError::Conflict(m),
            PortError::Domain(d) => AppError::Invalid(d),
            PortError::Unavailable(m) => AppError::Unavailable(m),
            PortError::Busy(m) => AppError::Busy(m),
        }
    }
}
