//! In-memory institutions, users, reset tokens and operator sessions (the rules of
//! `pg::users` and `pg::sessions`). Every write checks its unique rules before it changes
//! anything, so a refused write leaves no row and no event behind.

use super::rows::{SessionRow, State, TokenRow, UserRow};
use super::MemoryStore;
use async_trait::async_trait;
use campus_core::events::RecordsEvents;
use campus_core::ids::*;
use campus_core::user::{Institution, ResetPasswordToken, User};
use campus_core::values::{Email, Role};
use campus_core::Timestamp;
use campus_ports::*;

fn email_taken() -> PortError {
    PortError::Conflict("a user with this e-mail already exists".into())
}

impl State {
    /// Errors: `Conflict` if any of `users` has an e-mail in use (or used twice among them).
    pub(crate) fn check_new_users(&self, users: &[&User]) -> Result<(), PortError> {
        let mut seen = std::collections::HashSet::new();
        for u in users {
            let email = u.email.as_str();
            if self.emails.contains_key(email) || !seen.insert(email) {
                return Err(email_taken());
            }
        }
        Ok(())
    }

    /// Stores a user checked by [`State::check_new_users`] (its events are taken by the caller).
    pub(crate) fn insert_user(&mut self, user: &User) {
        self.emails
            .insert(user.email.as_str().to_string(), user.id.0);
        self.users.insert(
            user.id.0,
            UserRow {
                user: user.clone(),
                access_version: 1,
            },
        );
    }

    /// A new password and everything the old one gave revoked: access tokens (the version
    /// moves), admin sessions, and reset tokens still unused at `now`.
    fn update_password(&mut self, user: &User, now: Timestamp) {
        if let Some(row) = self.users.get_mut(&user.id.0) {
            row.user.password_hash = user.password_hash.clone();
            row.access_version += 1;
        }
        self.sessions.retain(|_, s| s.user_id != user.id);
        for t in self.tokens.values_mut() {
            if t.token.user_id == user.id && t.token.used_at.is_none() {
                t.token.used_at = Some(now);
            }
        }
    }
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn create_institution(
        &self,
        institution: &mut Institution,
        academic: &mut User,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        if s.institutions.contains_key(&institution.id.0) {
            return Err(PortError::Conflict(
                "duplicate value (institutions_pkey)".into(),
            ));
        }
        s.check_new_users(&[academic])?;
        s.institutions
            .insert(institution.id.0, institution.name.as_str().to_string());
        s.insert_user(academic);
        let mut events = institution.take_events();
        events.extend(academic.take_events());
        s.record(events, ctx, now);
        drop(s);
        self.wake();
        Ok(())
    }

    async fn create_user(&self, user: &mut User, ctx: &EventContext) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        s.check_new_users(&[user])?;
        s.insert_user(user);
        s.record(user.take_events(), ctx, now);
        drop(s);
        self.wake();
        Ok(())
    }

    async fn find_user(&self, id: UserId) -> Result<Option<User>, PortError> {
        Ok(self.lock().users.get(&id.0).map(|r| r.user.clone()))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, PortError> {
        let s = self.lock();
        Ok(s.emails
            .get(email.as_str())
            .and_then(|id| s.users.get(id))
            .map(|r| r.user.clone()))
    }

    async fn list_users(
        &self,
        institution: InstitutionId,
        role: Role,
        page: PageRequest,
    ) -> Result<Vec<UserSummary>, PortError> {
        let s = self.lock();
        let from = page.after.map_or(0, |a| a.saturating_add(1));
        Ok(s.users
            .range(from..)
            .map(|(_, r)| &r.user)
            .filter(|u| u.institution_id == Some(institution) && u.role == role)
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .map(|u| UserSummary {
                id: u.id,
                name: u.name.as_str().to_string(),
                email: u.email.as_str().to_string(),
            })
            .collect())
    }

    async fn save_reset_token(
        &self,
        token: Option<ResetPasswordToken>,
        not_since: Timestamp,
        ctx: &EventContext,
    ) -> Result<bool, PortError> {
        let Some(mut token) = token else {
            return Ok(false);
        };
        let now = self.now();
        let mut s = self.lock();
        let recent = s
            .tokens
            .values()
            .any(|t| t.token.user_id == token.user_id && t.created_at > not_since);
        if recent {
            return Ok(false);
        }
        let events = token.take_events();
        s.tokens.insert(
            token.id.0,
            TokenRow {
                token,
                created_at: now,
            },
        );
        s.record(events, ctx, now);
        drop(s);
        self.wake();
        Ok(true)
    }

    async fn find_reset_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ResetPasswordToken>, PortError> {
        Ok(self
            .lock()
            .tokens
            .values()
            .find(|t| t.token.token_hash == token_hash)
            .map(|t| t.token.clone()))
    }

    async fn reset_password(
        &self,
        token: &ResetPasswordToken,
        user: &mut User,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let used_at = token
            .used_at
            .ok_or_else(|| PortError::Conflict("token was not consumed".into()))?;
        let now = self.now();
        let mut s = self.lock();
        match s.tokens.get_mut(&token.id.0) {
            Some(stored) if stored.token.used_at.is_none() => stored.token.used_at = Some(used_at),
            _ => return Err(PortError::Conflict("the token was already used".into())),
        }
        s.update_password(user, used_at);
        s.record(user.take_events(), ctx, now);
        drop(s);
        self.wake();
        Ok(())
    }

    async fn set_password(&self, user: &mut User, ctx: &EventContext) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        s.update_password(user, now);
        s.record(user.take_events(), ctx, now);
        drop(s);
        self.wake();
        Ok(())
    }

    async fn access_version(&self, user: UserId) -> Result<Option<i64>, PortError> {
        Ok(self.lock().users.get(&user.0).map(|r| r.access_version))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        s.sessions.retain(|_, session| session.expires_at >= now);
        if s.sessions.contains_key(token_hash) {
            return Err(PortError::Conflict(
                "duplicate value (operator_sessions_pkey)".into(),
            ));
        }
        s.sessions.insert(
            token_hash.to_string(),
            SessionRow {
                user_id: user,
                csrf_token: csrf_token.to_string(),
                expires_at,
            },
        );
        Ok(())
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<OperatorSession>, PortError> {
        let s = self.lock();
        let Some(session) = s.sessions.get(token_hash).filter(|x| x.expires_at > now) else {
            return Ok(None);
        };
        let Some(user) = s.users.get(&session.user_id.0).map(|r| &r.user) else {
            return Ok(None);
        };
        Ok(Some(OperatorSession {
            user_id: user.id,
            role: user.role,
            institution_id: user.institution_id,
            name: user.name.as_str().to_string(),
            email: user.email.as_str().to_string(),
            csrf_token: session.csrf_token.clone(),
            expires_at: session.expires_at,
        }))
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), PortError> {
        self.lock().sessions.remove(token_hash);
        Ok(())
    }
}
