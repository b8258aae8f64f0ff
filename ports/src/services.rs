//! Small technical services: time, ids, password hashing, reset-token sealing, e-mail.

use crate::PortError;
use campus_core::events::SealedSecret;
use campus_core::user::PasswordHash;
use campus_core::values::Password;
use campus_core::Timestamp;

/// Current time.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// New unique ids (time-ordered UUIDv7 bits in production).
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> u128;
}

/// Password hashing (argon2 in production): deliberately slow, so it runs off the async
/// workers and refuses work beyond what the machine can do soon.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Errors: `Busy` when too many hashings already wait; `Unavailable` if hashing fails.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, PortError>;
    /// Whether `password` matches `hash`; a malformed hash never matches. Errors: `Busy`.
    async fn verify(&self, password: &str, hash: &PasswordHash) -> Result<bool, PortError>;
}

/// A freshly minted reset token: the plain text goes to the user, the hash to the database,
/// the sealed form into the event for the e-mail task.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub plain: String,
    pub hash: String,
    pub sealed: SealedSecret,
}

/// Creates, hashes and seals secret tokens.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait TokenVault: Send + Sync {
    fn mint(&self) -> MintedToken;
    /// Seals a secret made elsewhere (a webhook signing secret).
    fn seal(&self, plain: &str) -> SealedSecret;
    /// The stored hash of a plain token.
    fn hash(&self, plain: &str) -> String;
    /// Errors: `Conflict` when the sealed value was not made with this vault's key.
    fn unseal(&self, sealed: &SealedSecret) -> Result<String, PortError>;
}

/// An e-mail to send. `message_id` is stable per task lineage so a resend can be recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub message_id: String,
    /// The correlation id of the task that sends it, sent as the `X-Correlation-Id` header
    /// (left out unless it is a well-formed id, see
    /// `campus_core::engine::valid_correlation_id`).
    pub correlation_id: Option<String>,
}

/// Sends e-mail (SMTP or a local dev mailbox).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Errors: `Unavailable` when the server cannot be reached or refuses temporarily;
    /// `Conflict` when the message is refused permanently (bad address).
    async fn send(&self, email: &OutgoingEmail) -> Result<(), PortError>;
}
