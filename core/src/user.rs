//! Institutions, users and reset-password tokens.

use crate::error::DomainError;
use crate::events::{DomainEvent, RecordsEvents, SealedSecret};
use crate::ids::*;
use crate::time::Timestamp;
use crate::values::{Email, Name, Role};
use std::time::Duration;

/// A college using Campus. Created together with its first Academic user.
#[derive(Debug, Clone)]
pub struct Institution {
    pub id: InstitutionId,
    pub name: Name,
    events: Vec<DomainEvent>,
}

impl Institution {
    /// Creates an institution whose first Academic user is `academic` (built with
    /// [`User::register`] for this institution).
    pub fn create(id: InstitutionId, name: Name, academic: &User) -> Result<Self, DomainError> {
        if academic.role != Role::Academic {
            return Err(DomainError::WrongRole {
                expected: "academic",
            });
        }
        if academic.institution_id != Some(id) {
            return Err(DomainError::OtherInstitution);
        }
        let event = DomainEvent::InstitutionCreated {
            institution_id: id,
            name: name.as_str().to_string(),
            academic_id: academic.id,
        };
        Ok(Institution {
            id,
            name,
            events: vec![event],
        })
    }
}

impl RecordsEvents for Institution {
    fn take_events(&mut self) -> Vec<DomainEvent> {
        std::mem::take(&mut self.events)
    }
}

/// A password hash produced by the `PasswordHasher` port (the domain never sees plain text
/// after validation).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl PasswordHash {
    /// A hash no password matches (no hasher parses it): the account cannot log in until a
    /// password is set through the reset flow. `nonce` keeps such hashes distinct.
    pub fn unusable(nonce: u128) -> Self {
        PasswordHash(format!("!unusable:{nonce:032x}"))
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// A person who can log in. Every role but `Adm` belongs to exactly one institution.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub institution_id: Option<InstitutionId>,
    pub role: Role,
    pub name: Name,
    pub email: Email,
    pub password_hash: PasswordHash,
    events: Vec<DomainEvent>,
}

impl User {
    /// Registers a new user and records the role's "created" event.
    pub fn register(
        id: UserId,
        institution_id: Option<InstitutionId>,
        role: Role,
        name: Name,
        email: Email,
        password_hash: PasswordHash,
    ) -> Result<Self, DomainError> {
        match (role, institution_id) {
            (Role::Adm, Some(_)) => {
                return Err(DomainError::invalid(
                    "institution_id",
                    "an Adm user belongs to no institution",
                ))
            }
            (Role::Academic | Role::Teacher | Role::Student, None) => {
                return Err(DomainError::invalid(
                    "institution_id",
                    "this role needs an institution",
                ))
            }
            _ => {}
        }
        let event = DomainEvent::user_created(role, id, institution_id, email.as_str().to_string());
        Ok(User {
            id,
            institution_id,
            role,
            name,
            email,
            password_hash,
            events: vec![event],
        })
    }

    /// Rebuilds a stored user (no event: nothing happened).
    pub fn restore(
        id: UserId,
        institution_id: Option<InstitutionId>,
        role: Role,
        name: Name,
        email: Email,
        password_hash: PasswordHash,
    ) -> Self {
        User {
            id,
            institution_id,
            role,
            name,
            email,
            password_hash,
            events: Vec::new(),
        }
    }

    /// Replaces the password and records `PasswordChanged`.
    pub fn change_password(&mut self, new_hash: PasswordHash) {
        self.password_hash = new_hash;
        self.events.push(DomainEvent::PasswordChanged {
            user_id: self.id,
            institution_id: self.institution_id,
        });
    }

    /// Fails unless the user has `role`.
    pub fn ensure_role(&self, role: Role) -> Result<(), DomainError> {
        if self.role == role {
            Ok(())
        } else {
            Err(DomainError::WrongRole {
                expected: role.as_str(),
            })
        }
    }
}

impl RecordsEvents for User {
    fn take_events(&mut self) -> Vec<DomainEvent> {
        std::mem::take(&mut self.events)
    }
}

/// A single-use token that lets a user set a new password before it expires. Only its hash
/// is stored; the plain token travels sealed inside the event to the e-mail task.
#[derive(Debug, Clone)]
pub struct ResetPasswordToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub token_hash: String,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    events: Vec<DomainEvent>,
}

impl ResetPasswordToken {
    /// Default validity of a token.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);

    /// Issues a token for `user`, valid for `ttl` from `now`.
    pub fn issue(
        id: TokenId,
        user: &User,
        token_hash: String,
        sealed_token: SealedSecret,
        now: Timestamp,
        ttl: Duration,
    ) -> Self {
        let expires_at = now.plus(ttl);
        let event = DomainEvent::ResetPasswordTokenCreated {
            token_id: id,
            user_id: user.id,
            institution_id: user.institution_id,
            expires_at,
            sealed_token,
        };
        ResetPasswordToken {
            id,
            user_id: user.id,
            token_hash,
            expires_at,
            used_at: None,
            events: vec![event],
        }
    }

    /// Rebuilds a stored token.
    pub fn restore(
        id: TokenId,
        user_id: UserId,
        token_hash: String,
        expires_at: Timestamp,
        used_at: Option<Timestamp>,
    ) -> Self {
        ResetPasswordToken {
            id,
            user_id,
            token_hash,
            expires_at,
            used_at,
            events: Vec::new(),
        }
    }

    /// Marks the token used; fails when it was used before or has expired.
    pub fn consume(&mut self, now: Timestamp) -> Result<(), DomainError> {
        if self.used_at.is_some() {
            return Err(DomainError::TokenNotUsable("already used"));
        }
        if now >= self.expires_at {
            return Err(DomainError::TokenNotUsable("expired"));
        }
        self.used_at = Some(now);
        Ok(())
    }
}

impl RecordsEvents for ResetPasswordToken {
    fn take_events(&mut self) -> Vec<DomainEvent> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn user(role: Role, inst: Option<u128>) -> User {
        User::register(
            UserId(7),
            inst.map(InstitutionId),
            role,
            Name::parse("name", "Ana").unwrap(),
            Email::parse("ana@example.org").unwrap(),
            PasswordHash("h".into()),
        )
        .unwrap()
    }

    #[test]
    fn institution_created_names_its_academic() {
        let academic = user(Role::Academic, Some(1));
        let mut inst = Institution::create(
            InstitutionId(1),
            Name::parse("name", "Uni").unwrap(),
            &academic,
        )
        .unwrap();
        let events = inst.take_events();
        assert_eq!(events.len(), 1);
        assert!(
            matches!(&events[0], DomainEvent::InstitutionCreated { academic_id, .. } if *academic_id == UserId(7))
        );
        assert!(inst.take_events().is_empty(), "events are drained once");
    }

    #[test]
    fn institution_needs_an_academic_of_its_own() {
        let teacher = user(Role::Teacher, Some(1));
        assert!(
            Institution::create(InstitutionId(1), Name::parse("n", "Uni").unwrap(), &teacher)
                .is_err()
        );
        let other = user(Role::Academic, Some(2));
        assert_eq!(
            Institution::create(InstitutionId(1), Name::parse("n", "Uni").unwrap(), &other)
                .unwrap_err(),
            DomainError::OtherInstitution
        );
    }

    #[test]
    fn roles_and_institutions_must_agree() {
        let mut student = user(Role::Student, Some(3));
        assert_eq!(student.take_events()[0].event_type(), "StudentCreated");
        let err = User::register(
            UserId(1),
            None,
            Role::Teacher,
            Name::parse("n", "T").unwrap(),
            Email::parse("t@x.org").unwrap(),
            PasswordHash("h".into()),
        );
        assert!(err.is_err());
    }

    #[test]
    fn reset_token_is_single_use_and_expires() {
        let u = user(Role::Student, Some(1));
        let now = Timestamp(1_000);
        let mut t = ResetPasswordToken::issue(
            TokenId(1),
            &u,
            "hash".into(),
            SealedSecret("s".into()),
            now,
            Duration::from_secs(10),
        );
        assert_eq!(t.take_events()[0].event_type(), "ResetPasswordTokenCreated");
        let mut expired = t.clone();
        assert!(expired.consume(Timestamp(11_000)).is_err());
        t.consume(Timestamp(2_000)).unwrap();
        assert_eq!(
            t.consume(Timestamp(2_001)),
            Err(DomainError::TokenNotUsable("already used"))
        );
    }
}
