//! The domain's single error type: a rule of the domain said no.

use std::fmt;

/// Why an aggregate refused a command. Every variant is the caller's fault (a 4xx), never
/// an infrastructure failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// An input value is malformed (`field` names the input, `message` says what is wrong).
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The token is unknown, already used or expired.
    TokenNotUsable(&'static str),
    /// The student is already enrolled in this class.
    AlreadyEnrolled,
    /// The user does not have the role the command needs.
    WrongRole { expected: &'static str },
    /// The entities belong to different institutions.
    OtherInstitution,
}

impl DomainError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Invalid { field, message } => write!(f, "{field}: {message}"),
            DomainError::TokenNotUsable(why) => write!(f, "token cannot be used: {why}"),
            DomainError::AlreadyEnrolled => {
                write!(f, "the student is already enrolled in this class")
            }
            DomainError::WrongRole { expected } => write!(f, "the user must be a {expected}"),
            DomainError::OtherInstitution => {
                write!(f, "the entities belong to different institutions")
            }
        }
    }
}

impl std::error::Error for DomainError {}
