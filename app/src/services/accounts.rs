//! Institutions, log-in, password resets and the bootstrap Adm user.

use super::AppError;
use campus_core::ids::*;
use campus_core::user::{Institution, PasswordHash, ResetPasswordToken, User};
use campus_core::values::{Email, Name, Password, Role};
use campus_core::Timestamp;
use campus_ports::{Clock, EventContext, IdGenerator, PasswordHasher, TokenVault, UserRepository};
use std::sync::Arc;
use std::time::Duration;

/// The context of what start-up records.
fn startup() -> EventContext {
    EventContext {
        correlation_id: Some("startup".into()),
        actor_id: None,
    }
}

/// Account use cases.
#[derive(Clone)]
pub struct AccountService {
    pub users: Arc<dyn UserRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub vault: Arc<dyn TokenVault>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    /// A user gets at most one reset link per this long.
    pub reset_cooldown: Duration,
}

impl AccountService {
    /// Creates an institution and its first Academic user; records `InstitutionCreated`.
    pub async fn create_institution(
        &self,
        name: &str,
        academic_name: &str,
        email: &str,
        password: &str,
        ctx: &EventContext,
    ) -> Result<(InstitutionId, UserId), AppError> {
        let name = Name::parse("name", name)?;
        let academic_name = Name::parse("academic.name", academic_name)?;
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let institution_id = InstitutionId(self.ids.new_id());
        let mut academic = User::register(
            UserId(self.ids.new_id()),
            Some(institution_id),
            Role::Academic,
            academic_name,
            email,
            self.hasher.hash(&password).await?,
        )?;
        let mut institution = Institution::create(institution_id, name, &academic)?;
        self.users
            .create_institution(&mut institution, &mut academic, ctx)
            .await?;
        Ok((institution_id, academic.id))
    }

    /// Checks credentials. The same error and the same work (one password verification;
    /// the hasher spends it on a dummy hash when there is nothing to verify) whether the
    /// e-mail is unknown, its user has no password yet, or the password is wrong.
    pub async fn login(&self, email: &str, password: &str) -> Result<User, AppError> {
        let denied = || AppError::Unauthorized("invalid e-mail or password".into());
        let user = match Email::parse(email) {
            Ok(email) => self.users.find_user_by_email(&email).await?,
            Err(_) => None,
        };
        let no_password = PasswordHash(String::new());
        let hash = user.as_ref().map_or(&no_password, |u| &u.password_hash);
        match (self.hasher.verify(password, hash).await?, user) {
            (true, Some(user)) => Ok(user),
            _ => Err(denied()),
        }
    }

    /// The access version tokens of `user` carry (see `UserRepository::access_version`).
    pub async fn access_version(&self, user: &User) -> Result<i64, AppError> {
        self.users
            .access_version(user.id)
            .await?
            .ok_or(AppError::Unauthorized("invalid e-mail or password".into()))
    }

    /// Creates a single-use reset token for the user with this e-mail, if any, and at most
    /// one per `reset_cooldown`; records `ResetPasswordTokenCreated`. Says nothing about
    /// whether the user exists, neither in the answer nor in the work it does: an unknown
    /// e-mail mints a token and runs the same write, which saves nothing.
    pub async fn request_password_reset(
        &self,
        email: &str,
        ctx: &EventContext,
    ) -> Result<(), AppError> {
        let email = Email::parse(email)?;
        let user = self.users.find_user_by_email(&email).await?;
        let minted = self.vault.mint();
        let now = self.clock.now();
        let token = user.map(|user| {
            ResetPasswordToken::issue(
                TokenId(self.ids.new_id()),
                &user,
                minted.hash,
                minted.sealed,
                now,
                ResetPasswordToken::DEFAULT_TTL,
            )
        });
        let cooldown = i64::try_from(self.reset_cooldown.as_millis()).unwrap_or(i64::MAX);
        let not_since = Timestamp(now.0.saturating_sub(cooldown));
        self.users.save_reset_token(token, not_since, ctx).await?;
        Ok(())
    }

    /// Sets a new password with a reset token; the token is then used up.
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        ctx: &EventContext,
    ) -> Result<(), AppError> {
        let password = Password::parse(password)?;
        let unusable =
            |why: &'static str| AppError::Invalid(campus_core::DomainError::TokenNotUsable(why));
        if token.is_empty() || token.len() > 200 {
            return Err(unusable("unknown token"));
        }
        let mut stored = self
            .users
            .find_reset_token(&self.vault.hash(token))
            .await?
            .ok_or_else(|| unusable("unknown token"))?;
        stored.consume(self.clock.now())?;
        let mut user = self
            .users
            .find_user(stored.user_id)
            .await?
            .ok_or_else(|| unusable("unknown token"))?;
        user.change_password(self.hasher.hash(&password).await?);
        // The user who followed their link caused the change.
        let ctx = EventContext {
            actor_id: Some(user.id),
            ..ctx.clone()
        };
        match self.users.reset_password(&stored, &mut user, &ctx).await {
            Err(campus_ports::PortError::Conflict(_)) => Err(unusable("already used")),
            other => Ok(other?),
        }
    }

    /// Makes sure an Adm user with this e-mail exists and has this password. Safe when
    /// several processes start at once with the same settings.
    pub async fn ensure_adm(&self, email: &str, password: &str) -> Result<UserId, AppError> {
        let parsed = Email::parse(email)?;
        let secret = Password::parse(password)?;
        match self.users.find_user_by_email(&parsed).await? {
            Some(user) if user.role != Role::Adm => Err(AppError::Conflict(format!(
                "{parsed} already belongs to a non-Adm user"
            ))),
            Some(mut user) => {
                if !self
                    .hasher
                    .verify(secret.expose(), &user.password_hash)
                    .await?
                {
                    user.change_password(self.hasher.hash(&secret).await?);
                    self.users.set_password(&mut user, &startup()).await?;
                }
                Ok(user.id)
            }
            None => {
                self.create_adm(email, password).await?;
                match self.users.find_user_by_email(&parsed).await? {
                    Some(user) if user.role == Role::Adm => Ok(user.id),
                    _ => Err(AppError::Conflict(format!(
                        "{parsed} already belongs to a non-Adm user"
                    ))),
                }
            }
        }
    }

    /// Creates an Adm user with this e-mail and password unless a user has the e-mail;
    /// returns whether this call created it (a process that loses a race to another gets
    /// `false`).
    pub async fn create_adm(&self, email: &str, password: &str) -> Result<bool, AppError> {
        let mut user = User::register(
            UserId(self.ids.new_id()),
            None,
            Role::Adm,
            Name::parse("name", "Administrator")?,
            Email::parse(email)?,
            self.hasher.hash(&Password::parse(password)?).await?,
        )?;
        match self.users.create_user(&mut user, &startup()).await {
            Ok(()) => Ok(true),
            Err(campus_ports::PortError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a Teacher or Student of `institution` with an unusable password.
    pub async fn create_member(
        &self,
        institution: InstitutionId,
        role: Role,
        name: &str,
        email: &str,
        ctx: &EventContext,
    ) -> Result<UserId, AppError> {
        if !matches!(role, Role::Teacher | Role::Student) {
            return Err(AppError::Forbidden(
                "only teachers and students can be created here".into(),
            ));
        }
        let mut user = User::register(
            UserId(self.ids.new_id()),
            Some(institution),
            role,
            Name::parse("name", name)?,
            Email::parse(email)?,
            // They set a password through the reset flow.
            PasswordHash::unusable(self.ids.new_id()),
        )?;
        self.users.create_user(&mut user, ctx).await?;
        Ok(user.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::events::SealedSecret;
    use campus_core::Timestamp;
    use campus_ports::{
        MintedToken, MockClock, MockIdGenerator, MockPasswordHasher, MockTokenVault,
        MockUserRepository, PortError,
    };
    use mockall::predicate::*;

    fn service(
        users: MockUserRepository,
        hasher: MockPasswordHasher,
        vault: MockTokenVault,
    ) -> AccountService {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp(1_000_000));
        let mut ids = MockIdGenerator::new();
        let mut next = 0u128;
        ids.expect_new_id().returning(move || {
            next += 1;
            next
        });
        AccountService {
            users: Arc::new(users),
            hasher: Arc::new(hasher),
            vault: Arc::new(vault),
            clock: Arc::new(clock),
            ids: Arc::new(ids),
            reset_cooldown: Duration::from_secs(300),
        }
    }

    fn student() -> User {
        User::restore(
            UserId(9),
            Some(InstitutionId(1)),
            Role::Student,
            Name::parse("n", "Bia").unwrap(),
            Email::parse("bia@x.org").unwrap(),
            PasswordHash("old".into()),
        )
    }

    fn minted() -> MintedToken {
        MintedToken {
            plain: "PLAIN".into(),
            hash: "HASH".into(),
            sealed: SealedSecret("SEALED".into()),
        }
    }

    /// The same work as for a real user (a minted token, one write that saves nothing), so
    /// timing does not say whether the e-mail has an account.
    #[tokio::test]
    async fn reset_request_for_unknown_email_saves_nothing_after_the_same_work() {
        let mut users = MockUserRepository::new();
        users.expect_find_user_by_email().returning(|_| Ok(None));
        users
            .expect_save_reset_token()
            .withf(|t, _, _| t.is_none())
            .times(1)
            .returning(|_, _, _| Ok(false));
        let mut vault = MockTokenVault::new();
        vault.expect_mint().times(1).returning(minted);
        let s = service(users, MockPasswordHasher::new(), vault);
        s.request_password_reset("nobody@x.org", &EventContext::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn reset_request_saves_only_the_hash_and_records_the_event() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_user_by_email()
            .returning(|_| Ok(Some(student())));
        users
            .expect_save_reset_token()
            .withf(|t, not_since, ctx| {
                // The clock says 1 000 000 ms; the cooldown is 300 s.
                t.as_ref().is_some_and(|t| t.token_hash == "HASH")
                    && *not_since == Timestamp(1_000_000 - 300_000)
                    && ctx.correlation_id.as_deref() == Some("c1")
            })
            .times(1)
            .returning(|t, _, _| {
                use campus_core::events::RecordsEvents;
                let events = t.expect("a token").take_events();
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].event_type(), "ResetPasswordTokenCreated");
                Ok(true)
            });
        let mut vault = MockTokenVault::new();
        vault.expect_mint().returning(minted);
        let s = service(users, MockPasswordHasher::new(), vault);
        let ctx = EventContext {
            correlation_id: Some("c1".into()),
            actor_id: None,
        };
        s.request_password_reset("Bia@x.org", &ctx).await.unwrap();
    }

    #[tokio::test]
    async fn expired_token_is_refused_without_writing() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_reset_token()
            .with(eq("H"))
            .returning(|_| {
                Ok(Some(ResetPasswordToken::restore(
                    TokenId(1),
                    UserId(9),
                    "H".into(),
                    Timestamp(10),
                    None,
                )))
            });
        users.expect_reset_password().never();
        let mut vault = MockTokenVault::new();
        vault.expect_hash().returning(|_| "H".into());
        let s = service(users, MockPasswordHasher::new(), vault);
        let err = s
            .reset_password("tok", "new password", &EventContext::default())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            AppError::Invalid(campus_core::DomainError::TokenNotUsable("expired"))
        ));
    }

    #[tokio::test]
    async fn login_with_unknown_email_is_unauthorized() {
        let mut users = MockUserRepository::new();
        users.expect_find_user_by_email().returning(|_| Ok(None));
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().times(1).returning(|_, _| Ok(false));
        let s = service(users, hasher, MockTokenVault::new());
        assert!(matches!(
            s.login("a@x.org", "whatever1").await,
            Err(AppError::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn a_verification_that_matches_without_a_user_logs_no_one_in() {
        let mut users = MockUserRepository::new();
        users.expect_find_user_by_email().returning(|_| Ok(None));
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().returning(|_, _| Ok(true));
        let s = service(users, hasher, MockTokenVault::new());
        assert!(matches!(
            s.login("a@x.org", "whatever1").await,
            Err(AppError::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn a_busy_hasher_is_a_503_not_a_401() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_user_by_email()
            .returning(|_| Ok(Some(student())));
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .returning(|_, _| Err(PortError::Busy("queue full".into())));
        let s = service(users, hasher, MockTokenVault::new());
        assert!(matches!(
            s.login("bia@x.org", "whatever1").await,
            Err(AppError::Busy(_))
        ));
    }

    /// Two processes starting together: the one whose insert loses gets `false`, so it does
    /// not hand over a password that is not the user's.
    #[tokio::test]
    async fn creating_the_adm_a_second_time_says_it_did_not() {
        let mut users = MockUserRepository::new();
        users
            .expect_create_user()
            .times(1)
            .returning(|_, _| Err(PortError::Conflict("duplicate e-mail".into())));
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash("h".into())));
        let s = service(users, hasher, MockTokenVault::new());
        assert!(!s.create_adm("adm@x.org", "password-1").await.unwrap());
    }

    #[tokio::test]
    async fn duplicate_email_is_a_conflict() {
        let mut users = MockUserRepository::new();
        users.expect_create_institution().returning(|_, _, _| {
            Err(PortError::Conflict(
                "a user with this e-mail already exists".into(),
            ))
        });
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash("h".into())));
        let s = service(users, hasher, MockTokenVault::new());
        let err = s
            .create_institution(
                "Uni",
                "Ana",
                "ana@x.org",
                "password1",
                &EventContext::default(),
            )
            .await;
        assert!(matches!(err, Err(AppError::Conflict(_))));
    }
}
