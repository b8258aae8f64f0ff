//! JSON shapes of domain events: what `domain_events.payload` holds and what task handlers
//! read back, shared by the adapters (which write them) and the handlers (which read them),
//! so neither depends on the other. `event_payload` maps a core event to its JSON.

use campus_core::events::{DomainEvent, EventType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// A payload that is the JSON of one event type: a route from that event passes it to its
/// task unchanged, and the task's handler reads it typed.
pub trait EventPayload: serde::de::DeserializeOwned + Send + 'static {
    const EVENT: EventType;
}

fn uuid(v: u128) -> Uuid {
    Uuid::from_u128(v)
}

fn time(ts: campus_core::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ts.0).unwrap_or_default()
}

/// Payload of `InstitutionCreated`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstitutionCreatedPayload {
    pub institution_id: Uuid,
    pub name: String,
    pub academic_id: Uuid,
}

impl EventPayload for InstitutionCreatedPayload {
    const EVENT: EventType = EventType::InstitutionCreated;
}

/// Payload of `ResetPasswordTokenCreated`. `sealed_token` is the token encrypted with the
/// server key: the database alone never reveals a usable token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResetPasswordTokenCreatedPayload {
    pub token_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub sealed_token: String,
}

impl EventPayload for ResetPasswordTokenCreatedPayload {
    const EVENT: EventType = EventType::ResetPasswordTokenCreated;
}

/// Payload of `ExamGradeNoteAdded`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExamGradeNoteAddedPayload {
    pub class_id: Uuid,
    pub student_id: Uuid,
    pub exam: String,
    pub note: f64,
    pub previous: Option<f64>,
}

impl EventPayload for ExamGradeNoteAddedPayload {
    const EVENT: EventType = EventType::ExamGradeNoteAdded;
}

/// The JSON payload stored for `event`.
pub fn event_payload(event: &DomainEvent) -> Value {
    match event {
        DomainEvent::InstitutionCreated {
            institution_id,
            name,
            academic_id,
        } => to_value(InstitutionCreatedPayload {
            institution_id: uuid(institution_id.0),
            name: name.clone(),
            academic_id: uuid(academic_id.0),
        }),
        DomainEvent::AdmCreated { user_id, email } => {
            json!({"user_id": uuid(user_id.0), "email": email})
        }
        DomainEvent::AcademicCreated { user_id, email, .. }
        | DomainEvent::TeacherCreated { user_id, email, .. }
        | DomainEvent::StudentCreated { user_id, email, .. } => {
            json!({"user_id": uuid(user_id.0), "email": email})
        }
        DomainEvent::ResetPasswordTokenCreated {
            token_id,
            user_id,
            expires_at,
            sealed_token,
            ..
        } => to_value(ResetPasswordTokenCreatedPayload {
            token_id: uuid(token_id.0),
            user_id: uuid(user_id.0),
            expires_at: time(*expires_at),
            sealed_token: sealed_token.0.clone(),
        }),
        DomainEvent::PasswordChanged { user_id, .. } => json!({"user_id": uuid(user_id.0)}),
        DomainEvent::DisciplineCreated {
            discipline_id,
            name,
            ..
        } => {
            json!({"discipline_id": uuid(discipline_id.0), "name": name})
        }
        DomainEvent::ClassCreated {
            class_id,
            discipline_id,
            teacher_id,
            period,
            ..
        } => json!({
            "class_id": uuid(class_id.0),
            "discipline_id": uuid(discipline_id.0),
            "teacher_id": uuid(teacher_id.0),
            "period": period,
        }),
        DomainEvent::StudentEnrolled {
            class_id,
            student_id,
            ..
        } => {
            json!({"class_id": uuid(class_id.0), "student_id": uuid(student_id.0)})
        }
        DomainEvent::ExamGradeNoteAdded {
            class_id,
            student_id,
            exam,
            note,
            previous,
            ..
        } => to_value(ExamGradeNoteAddedPayload {
            class_id: uuid(class_id.0),
            student_id: uuid(student_id.0),
            exam: exam.as_str().to_string(),
            note: *note,
            previous: *previous,
        }),
        DomainEvent::NotificationCreated {
            notification_id,
            user_id,
            kind,
            ..
        } => {
            json!({"notification_id": uuid(notification_id.0), "user_id": uuid(user_id.0), "kind": kind})
        }
    }
}

/// Serializes a payload struct (infallible for these plain structs).
fn to_value<T: Serialize>(payload: T) -> Value {
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::*;
    use campus_core::values::Exam;

    #[test]
    fn grade_note_payload_round_trips() {
        let e = DomainEvent::ExamGradeNoteAdded {
            class_id: ClassId(1),
            student_id: UserId(2),
            institution_id: InstitutionId(3),
            exam: Exam::N3,
            note: 9.5,
            previous: None,
        };
        assert_eq!(e.kind(), ExamGradeNoteAddedPayload::EVENT);
        let p: ExamGradeNoteAddedPayload = serde_json::from_value(event_payload(&e)).unwrap();
        assert_eq!(p.exam, "N3");
        assert_eq!(p.student_id, Uuid::from_u128(2));
        assert_eq!(p.note, 9.5);
    }
}
