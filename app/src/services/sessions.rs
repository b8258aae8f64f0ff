//! Operators' browser sessions for the admin screen: log in (Adm and Academic users only),
//! look a session up by its cookie token, log out. Only the token's hash is stored.

use super::{AccountService, AppError};
use campus_core::values::Role;
use campus_core::Timestamp;
use campus_ports::{Clock, OperatorSession, SessionStore, TokenVault};
use std::sync::Arc;
use std::time::Duration;

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Clone)]
pub struct SessionService {
    pub accounts: AccountService,
    pub sessions: Arc<dyn SessionStore>,
    pub vault: Arc<dyn TokenVault>,
    pub clock: Arc<dyn Clock>,
}

impl SessionService {
    /// Checks the credentials and opens a session; returns the cookie token (shown to no one
    /// else, stored only as a hash) and the session. Errors: `Unauthorized` for bad
    /// credentials, `Forbidden` for users who are not operators.
    pub async fn open(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(String, OperatorSession), AppError> {
        let user = self.accounts.login(email, password).await?;
        if !matches!(user.role, Role::Adm | Role::Academic) {
            return Err(AppError::Forbidden(
                "the admin screen is for Adm and Academic users".into(),
            ));
        }
        let token = self.vault.mint();
        let csrf_token = self.vault.mint().plain;
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
        let expires_at = Timestamp(self.clock.now().0.saturating_add(ttl));
        self.sessions
            .create_session(&token.hash, user.id, &csrf_token, expires_at)
            .await?;
        Ok((
            token.plain,
            OperatorSession {
                user_id: user.id,
                role: user.role,
                institution_id: user.institution_id,
                name: user.name.as_str().to_string(),
                email: user.email.as_str().to_string(),
                csrf_token,
                expires_at,
            },
        ))
    }

    /// The live session of a cookie token, if any.
    pub async fn find(&self, token: &str) -> Result<Option<OperatorSession>, AppError> {
        if token.is_empty() || token.len() > 200 {
            return Ok(None);
        }
        Ok(self
            .sessions
            .find_session(&self.vault.hash(token), self.clock.now())
            .await?)
    }

    /// Ends the session of a cookie token.
    pub async fn close(&self, token: &str) -> Result<(), AppError> {
        Ok(self
            .sessions
            .delete_session(&self.vault.hash(token))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::*;
    use campus_core::user::{PasswordHash, User};
    use campus_core::values::{Email, Name};
    use campus_ports::*;

    fn user(role: Role) -> User {
        User::restore(
            UserId(3),
            (role != Role::Adm).then_some(InstitutionId(1)),
            role,
            Name::parse("n", "Op").unwrap(),
            Email::parse("op@x.org").unwrap(),
            PasswordHash("stored".into()),
        )
    }

    fn service(role: Role, sessions: MockSessionStore) -> SessionService {
        let mut users = MockUserRepository::new();
        users
            .expect_find_user_by_email()
            .returning(move |_| Ok(Some(user(role))));
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .returning(|password, _| Ok(password == "right"));
        let mut vault = MockTokenVault::new();
        let mut n = 0;
        vault.expect_mint().returning(move || {
            n += 1;
            MintedToken {
                plain: format!("plain-{n}"),
                hash: format!("hash-{n}"),
                sealed: campus_core::events::SealedSecret(String::new()),
            }
        });
        vault.expect_hash().returning(|p| format!("hash-of-{p}"));
        let vault: Arc<dyn TokenVault> = Arc::new(vault);
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp(1_000));
        let clock: Arc<dyn Clock> = Arc::new(clock);
        SessionService {
            accounts: AccountService {
                users: Arc::new(users),
                hasher: Arc::new(hasher),
                vault: vault.clone(),
                clock: clock.clone(),
                ids: Arc::new(MockIdGenerator::new()),
                reset_cooldown: std::time::Duration::from_secs(300),
            },
            sessions: Arc::new(sessions),
            vault,
            clock,
        }
    }

    #[tokio::test]
    async fn an_operator_gets_a_session_stored_by_hash_only() {
        let mut sessions = MockSessionStore::new();
        sessions
            .expect_create_session()
            .withf(|hash, user, csrf, expires| {
                hash == "hash-1"
                    && *user == UserId(3)
                    && csrf == "plain-2"
                    && expires.0 == 1_000 + 8 * 3600 * 1000
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let (token, session) = service(Role::Academic, sessions)
            .open("op@x.org", "right")
            .await
            .unwrap();
        assert_eq!(token, "plain-1");
        assert_eq!(session.csrf_token, "plain-2");
        assert_eq!(session.institution_id, Some(InstitutionId(1)));
    }

    #[tokio::test]
    async fn students_and_wrong_passwords_get_no_session() {
        let no_store = || {
            let mut s = MockSessionStore::new();
            s.expect_create_session().never();
            s
        };
        assert!(matches!(
            service(Role::Student, no_store())
                .open("op@x.org", "right")
                .await,
            Err(AppError::Forbidden(_))
        ));
        assert!(matches!(
            service(Role::Adm, no_store())
                .open("op@x.org", "wrong")
                .await,
            Err(AppError::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn a_session_is_looked_up_by_the_hash_of_its_token() {
        let mut sessions = MockSessionStore::new();
        sessions
            .expect_find_session()
            .withf(|hash, now| hash == "hash-of-abc" && now.0 == 1_000)
            .times(1)
            .returning(|_, _| Ok(None));
        let svc = service(Role::Adm, sessions);
        assert!(svc.find("abc").await.unwrap().is_none());
        // Absurd tokens never reach the store.
        assert!(svc.find("").await.unwrap().is_none());
        assert!(svc.find(&"x".repeat(500)).await.unwrap().is_none());
    }
}
