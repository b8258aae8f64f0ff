//! Repositories of the academic domain. Every write takes the aggregate, drains the events
//! it recorded and saves rows and events in ONE transaction (the transactional outbox).

use crate::PortError;
use campus_core::academic::{Class, Discipline, Enrollment};
use campus_core::ids::*;
use campus_core::notification::Notification;
use campus_core::user::{Institution, ResetPasswordToken, User};
use campus_core::values::{Email, Exam, Note, Role};
use campus_core::Timestamp;

/// Metadata stored with every event a request records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// Correlation id of the request, propagated to events, tasks and logs.
    pub correlation_id: Option<String>,
    /// The user who caused the change (the logged-in user of the request); `None` for
    /// system actors (the demo seed, start-up) and anonymous requests.
    pub actor_id: Option<UserId>,
}

/// A page request: at most `limit` items after the item with id `after` (ids are
/// time-ordered, so this is creation order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<u128>,
}

/// A user as listed (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub id: UserId,
    pub name: String,
    pub email: String,
}

/// A class as listed, with the names a person needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSummary {
    pub id: ClassId,
    pub institution_id: InstitutionId,
    pub discipline_id: DisciplineId,
    pub discipline_name: String,
    pub teacher_id: UserId,
    pub teacher_name: String,
    pub period: String,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationView {
    pub id: NotificationId,
    pub kind: String,
    pub message: String,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
    /// The correlation id of the request that led to it (from the task that created it).
    pub correlation_id: Option<String>,
}

/// Institutions, users and reset tokens.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait UserRepository: Send + Sync {
    /// Saves a new institution with its first Academic user. Errors: `Conflict` if the e-mail
    /// is taken.
    async fn create_institution(
        &self,
        institution: &mut Institution,
        academic: &mut User,
        ctx: &EventContext,
    ) -> Result<(), PortError>;
    /// Saves a new user. Errors: `Conflict` if the e-mail is taken.
    async fn create_user(&self, user: &mut User, ctx: &EventContext) -> Result<(), PortError>;
    async fn find_user(&self, id: UserId) -> Result<Option<User>, PortError>;
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, PortError>;
    /// Users of one role in one institution, in creation order.
    async fn list_users(
        &self,
        institution: InstitutionId,
        role: Role,
        page: PageRequest,
    ) -> Result<Vec<UserSummary>, PortError>;
    /// Saves `token` and the event it recorded, unless its user was issued another token
    /// after `not_since`; returns whether it was saved. With `None` (an e-mail nobody has)
    /// it runs the same statement, which then writes nothing, so that both cases take the
    /// same time.
    async fn save_reset_token(
        &self,
        token: Option<ResetPasswordToken>,
        not_since: Timestamp,
        ctx: &EventContext,
    ) -> Result<bool, PortError>;
    async fn find_reset_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ResetPasswordToken>, PortError>;
    /// Stores the consumed token and the user's new password together, and revokes what the
    /// old password gave: the user's other reset tokens, their admin sessions and their
    /// access tokens (see `access_version`). Errors: `Conflict` if the token was consumed
    /// concurrently.
    async fn reset_password(
        &self,
        token: &ResetPasswordToken,
        user: &mut User,
        ctx: &EventContext,
    ) -> Result<(), PortError>;
    /// Saves a user's new password hash and the events it recorded (`PasswordChanged`), and
    /// revokes their reset tokens, sessions and access tokens as `reset_password` does.
    async fn set_password(&self, user: &mut User, ctx: &EventContext) -> Result<(), PortError>;
    /// The version access tokens of `user` must carry (`None`: no such user). It changes
    /// whenever the password does.
    async fn access_version(&self, user: UserId) -> Result<Option<i64>, PortError>;
}

/// Disciplines, classes, enrollments and grade notes of an institution.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait AcademicRepository: Send + Sync {
    /// Errors: `Conflict` if the institution already has a discipline with this name.
    async fn create_discipline(
        &self,
        discipline: &mut Discipline,
        ctx: &EventContext,
    ) -> Result<(), PortError>;
    async fn find_discipline(
        &self,
        institution: InstitutionId,
        id: DisciplineId,
    ) -> Result<Option<Discipline>, PortError>;
    async fn list_disciplines(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<Discipline>, PortError>;
    async fn create_class(&self, class: &mut Class, ctx: &EventContext) -> Result<(), PortError>;
    async fn find_class(
        &self,
        institution: InstitutionId,
        id: ClassId,
    ) -> Result<Option<ClassSummary>, PortError>;
    async fn list_classes(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<ClassSummary>, PortError>;
    /// Errors: `Domain(AlreadyEnrolled)` if the student is in the class.
    async fn enroll(
        &self,
        enrollment: &mut Enrollment,
        ctx: &EventContext,
    ) -> Result<(), PortError>;
    /// Reads the enrollment under a row lock, runs `Enrollment::set_note` on it, and saves
    /// the note and the event it recorded in that one transaction: concurrent grades of one
    /// student take turns, none is reverted, and every event's `previous` is the note it
    /// replaced. Returns what `set_note` returned (`false`: the same note, nothing saved), or
    /// `None` when there is no such enrollment.
    async fn set_note(
        &self,
        class: ClassId,
        student: UserId,
        exam: Exam,
        note: Note,
        ctx: &EventContext,
    ) -> Result<Option<bool>, PortError>;
}

/// Notifications of users.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait NotificationRepository: Send + Sync {
    /// Saves the notification unless one with the same `dedup_key` exists (idempotent
    /// handlers pass the task lineage), with `ctx`'s correlation id. Returns whether it was
    /// created.
    async fn create_once(
        &self,
        notification: &mut Notification,
        dedup_key: &str,
        ctx: &EventContext,
    ) -> Result<bool, PortError>;
    async fn list_for_user(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Vec<NotificationView>, PortError>;
}

/// The demo data of one institution, built from aggregates by the seeding task.
#[derive(Debug, Default)]
pub struct DemoData {
    pub users: Vec<User>,
    pub disciplines: Vec<Discipline>,
    pub classes: Vec<Class>,
    pub enrollments: Vec<Enrollment>,
}

/// Demo data for new institutions.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait DemoDataRepository: Send + Sync {
    /// Saves the data and its events in one transaction unless the institution was seeded
    /// before; returns whether it saved anything. `task` is recorded as the seeding task.
    async fn save_demo_data(
        &self,
        institution: InstitutionId,
        task: TaskId,
        data: DemoData,
        ctx: &EventContext,
    ) -> Result<bool, PortError>;
}

/// Which task lineages already sent their e-mail (a retry must not send twice).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait SentEmailLog: Send + Sync {
    async fn was_sent(&self, lineage: TaskId) -> Result<bool, PortError>;
    /// Returns false if the lineage was already recorded.
    async fn record_sent(
        &self,
        lineage: TaskId,
        message_id: &str,
        recipient: &str,
    ) -> Result<bool, PortError>;
}
