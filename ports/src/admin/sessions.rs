//! The operators' browser sessions of the admin screen.

use crate::PortError;
use campus_core::ids::*;
use campus_core::Timestamp;

/// A signed-in operator (Adm or Academic) of the admin screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    pub user_id: UserId,
    pub role: campus_core::values::Role,
    pub institution_id: Option<InstitutionId>,
    pub name: String,
    pub email: String,
    /// Must come back with every state-changing form of this session.
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// Browser sessions of operators, stored by the hash of their token.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session (and forgets expired ones).
    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<(), PortError>;
    /// The session with this token hash, unless it expired by `now`.
    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<OperatorSession>, PortError>;
    /// Ends the session (no error when there is none).
    async fn delete_session(&self, token_hash: &str) -> Result<(), PortError>;
}
