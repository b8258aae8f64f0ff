//! Past-tense domain events recorded by the aggregates.
//!
//! Every variant is a fact. `event_type()` is the stable name stored with the event and used
//! to route it to handlers; renaming a variant must keep its string.

use crate::ids::*;
use crate::time::Timestamp;
use crate::values::{Exam, Role};

/// An opaque, already-sealed secret (e.g. a reset token encrypted by an adapter). The domain
/// carries it without being able to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub String);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(***)")
    }
}

/// Something that happened in the academic domain.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    InstitutionCreated {
        institution_id: InstitutionId,
        name: String,
        academic_id: UserId,
    },
    AdmCreated {
        user_id: UserId,
        email: String,
    },
    AcademicCreated {
        user_id: UserId,
        institution_id: InstitutionId,
        email: String,
    },
    TeacherCreated {
        user_id: UserId,
        institution_id: InstitutionId,
        email: String,
    },
    StudentCreated {
        user_id: UserId,
        institution_id: InstitutionId,
        email: String,
    },
    ResetPasswordTokenCreated {
        token_id: TokenId,
        user_id: UserId,
        institution_id: Option<InstitutionId>,
        expires_at: Timestamp,
        sealed_token: SealedSecret,
    },
    PasswordChanged {
        user_id: UserId,
        institution_id: Option<InstitutionId>,
    },
    DisciplineCreated {
        discipline_id: DisciplineId,
        institution_id: InstitutionId,
        name: String,
    },
    ClassCreated {
        class_id: ClassId,
        institution_id: InstitutionId,
        discipline_id: DisciplineId,
        teacher_id: UserId,
        period: String,
    },
    StudentEnrolled {
        class_id: ClassId,
        student_id: UserId,
        institution_id: InstitutionId,
    },
    ExamGradeNoteAdded {
        class_id: ClassId,
        student_id: UserId,
        institution_id: InstitutionId,
        exam: Exam,
        note: f64,
        previous: Option<f64>,
    },
    NotificationCreated {
        notification_id: NotificationId,
        user_id: UserId,
        institution_id: InstitutionId,
        kind: String,
    },
}

/// The type of every event an aggregate records: what routes name (a typo does not compile)
/// and what the registry checks its routes against at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    InstitutionCreated,
    AdmCreated,
    AcademicCreated,
    TeacherCreated,
    StudentCreated,
    ResetPasswordTokenCreated,
    PasswordChanged,
    DisciplineCreated,
    ClassCreated,
    StudentEnrolled,
    ExamGradeNoteAdded,
    NotificationCreated,
}

impl EventType {
    /// Every type an aggregate records.
    pub const ALL: [EventType; 12] = [
        EventType::InstitutionCreated,
        EventType::AdmCreated,
        EventType::AcademicCreated,
        EventType::TeacherCreated,
        EventType::StudentCreated,
        EventType::ResetPasswordTokenCreated,
        EventType::PasswordChanged,
        EventType::DisciplineCreated,
        EventType::ClassCreated,
        EventType::StudentEnrolled,
        EventType::ExamGradeNoteAdded,
        EventType::NotificationCreated,
    ];

    /// The stable name stored with the event (`domain_events.event_type`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::InstitutionCreated => "InstitutionCreated",
            EventType::AdmCreated => "AdmCreated",
            EventType::AcademicCreated => "AcademicCreated",
            EventType::TeacherCreated => "TeacherCreated",
            EventType::StudentCreated => "StudentCreated",
            EventType::ResetPasswordTokenCreated => "ResetPasswordTokenCreated",
            EventType::PasswordChanged => "PasswordChanged",
            EventType::DisciplineCreated => "DisciplineCreated",
            EventType::ClassCreated => "ClassCreated",
            EventType::StudentEnrolled => "StudentEnrolled",
            EventType::ExamGradeNoteAdded => "ExamGradeNoteAdded",
            EventType::NotificationCreated => "NotificationCreated",
        }
    }

    /// The type stored as `raw`, if an aggregate records it.
    pub fn parse(raw: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value of an event's payload. Adapters store the payload as JSON: `Id` as a UUID
/// string, `Time` as an RFC 3339 instant, the rest as themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PayloadValue<'a> {
    Id(u128),
    Text(&'a str),
    Time(Timestamp),
    Number(f64),
    OptNumber(Option<f64>),
}

impl DomainEvent {
    /// The payload stored with the event, field by field: what a handler of the event reads
    /// back (the institution and the aggregate are stored in columns of their own).
    pub fn payload(&self) -> Vec<(&'static str, PayloadValue<'_>)> {
        use PayloadValue::{Id, Number, OptNumber, Text, Time};
        match self {
            DomainEvent::InstitutionCreated {
                institution_id,
                name,
                academic_id,
            } => vec![
                ("institution_id", Id(institution_id.0)),
                ("name", Text(name)),
                ("academic_id", Id(academic_id.0)),
            ],
            DomainEvent::AdmCreated { user_id, email }
            | DomainEvent::AcademicCreated { user_id, email, .. }
            | DomainEvent::TeacherCreated { user_id, email, .. }
            | DomainEvent::StudentCreated { user_id, email, .. } => {
                vec![("user_id", Id(user_id.0)), ("email", Text(email))]
            }
            DomainEvent::ResetPasswordTokenCreated {
                token_id,
                user_id,
                expires_at,
                sealed_token,
                ..
            } => vec![
                ("token_id", Id(token_id.0)),
                ("user_id", Id(user_id.0)),
                ("expires_at", Time(*expires_at)),
                ("sealed_token", Text(&sealed_token.0)),
            ],
            DomainEvent::PasswordChanged { user_id, .. } => vec![("user_id", Id(user_id.0))],
            DomainEvent::DisciplineCreated {
                discipline_id,
                name,
                ..
            } => vec![("discipline_id", Id(discipline_id.0)), ("name", Text(name))],
            DomainEvent::ClassCreated {
                class_id,
                discipline_id,
                teacher_id,
                period,
                ..
            } => vec![
                ("class_id", Id(class_id.0)),
                ("discipline_id", Id(discipline_id.0)),
                ("teacher_id", Id(teacher_id.0)),
                ("period", Text(period)),
            ],
            DomainEvent::StudentEnrolled {
                class_id,
                student_id,
                ..
            } => vec![
                ("class_id", Id(class_id.0)),
                ("student_id", Id(student_id.0)),
            ],
            DomainEvent::ExamGradeNoteAdded {
                class_id,
                student_id,
                exam,
                note,
                previous,
                ..
            } => vec![
                ("class_id", Id(class_id.0)),
                ("student_id", Id(student_id.0)),
                ("exam", Text(exam.as_str())),
                ("note", Number(*note)),
                ("previous", OptNumber(*previous)),
            ],
            DomainEvent::NotificationCreated {
                notification_id,
                user_id,
                kind,
                ..
            } => vec![
                ("notification_id", Id(notification_id.0)),
                ("user_id", Id(user_id.0)),
                ("kind", Text(kind)),
            ],
        }
    }

    /// The type of the event.
    pub fn kind(&self) -> EventType {
        match self {
            DomainEvent::InstitutionCreated { .. } => EventType::InstitutionCreated,
            DomainEvent::AdmCreated { .. } => EventType::AdmCreated,
            DomainEvent::AcademicCreated { .. } => EventType::AcademicCreated,
            DomainEvent::TeacherCreated { .. } => EventType::TeacherCreated,
            DomainEvent::StudentCreated { .. } => EventType::StudentCreated,
            DomainEvent::ResetPasswordTokenCreated { .. } => EventType::ResetPasswordTokenCreated,
            DomainEvent::PasswordChanged { .. } => EventType::PasswordChanged,
            DomainEvent::DisciplineCreated { .. } => EventType::DisciplineCreated,
            DomainEvent::ClassCreated { .. } => EventType::ClassCreated,
            DomainEvent::StudentEnrolled { .. } => EventType::StudentEnrolled,
            DomainEvent::ExamGradeNoteAdded { .. } => EventType::ExamGradeNoteAdded,
            DomainEvent::NotificationCreated { .. } => EventType::NotificationCreated,
        }
    }

    /// The stable type name stored with the event.
    pub fn event_type(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The aggregate that recorded the event: its type name and id.
    pub fn aggregate(&self) -> (&'static str, u128) {
        match self {
            DomainEvent::InstitutionCreated { institution_id, .. } => {
                ("Institution", institution_id.0)
            }
            DomainEvent::AdmCreated { user_id, .. }
            | DomainEvent::AcademicCreated { user_id, .. }
            | DomainEvent::TeacherCreated { user_id, .. }
            | DomainEvent::StudentCreated { user_id, .. }
            | DomainEvent::PasswordChanged { user_id, .. } => ("User", user_id.0),
            DomainEvent::ResetPasswordTokenCreated { token_id, .. } => {
                ("ResetPasswordToken", token_id.0)
            }
            DomainEvent::DisciplineCreated { discipline_id, .. } => ("Discipline", discipline_id.0),
            DomainEvent::ClassCreated { class_id, .. } => ("Class", class_id.0),
            // An enrollment is identified by its class; the student is in the payload.
            DomainEvent::StudentEnrolled { class_id, .. }
            | DomainEvent::ExamGradeNoteAdded { class_id, .. } => ("Enrollment", class_id.0),
            DomainEvent::NotificationCreated {
                notification_id, ..
            } => ("Notification", notification_id.0),
        }
    }

    /// The tenant the event belongs to (`None` for global facts such as a new Adm).
    pub fn institution_id(&self) -> Option<InstitutionId> {
        match self {
            DomainEvent::InstitutionCreated { institution_id, .. }
            | DomainEvent::AcademicCreated { institution_id, .. }
            | DomainEvent::TeacherCreated { institution_id, .. }
            | DomainEvent::StudentCreated { institution_id, .. }
            | DomainEvent::DisciplineCreated { institution_id, .. }
            | DomainEvent::ClassCreated { institution_id, .. }
            | DomainEvent::StudentEnrolled { institution_id, .. }
            | DomainEvent::ExamGradeNoteAdded { institution_id, .. }
            | DomainEvent::NotificationCreated { institution_id, .. } => Some(*institution_id),
            DomainEvent::ResetPasswordTokenCreated { institution_id, .. }
            | DomainEvent::PasswordChanged { institution_id, .. } => *institution_id,
            DomainEvent::AdmCreated { .. } => None,
        }
    }

    /// Role-specific "user created" event.
    pub(crate) fn user_created(
        role: Role,
        user_id: UserId,
        institution_id: Option<InstitutionId>,
        email: String,
    ) -> Self {
        match (role, institution_id) {
            (Role::Academic, Some(institution_id)) => DomainEvent::AcademicCreated {
                user_id,
                institution_id,
                email,
            },
            (Role::Teacher, Some(institution_id)) => DomainEvent::TeacherCreated {
                user_id,
                institution_id,
                email,
            },
            (Role::Student, Some(institution_id)) => DomainEvent::StudentCreated {
                user_id,
                institution_id,
                email,
            },
            _ => DomainEvent::AdmCreated { user_id, email },
        }
    }
}

/// Implemented by aggregates that record events: the repository drains them and saves them
/// in the same transaction as the aggregate's rows.
pub trait RecordsEvents {
    /// Removes and returns the events recorded since the last call.
    fn take_events(&mut self) -> Vec<DomainEvent>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_are_unique_and_parse_back() {
        let mut names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::parse("InstitutionCreatd"), None);
    }
}
