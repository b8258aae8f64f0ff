//! Event payloads as JSON: [`event_payload`] writes what `domain_events.payload` holds (for
//! every event, from [`DomainEvent::payload`]); a handler reads it back typed, into a struct
//! of its own implementing [`EventPayload`]. Adapters (which write) and handlers (which read)
//! share only this module, so neither depends on the other, and a new event needs no line
//! here.

use campus_core::events::{DomainEvent, EventType, PayloadValue};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A payload that is the JSON of one event type: a route from that event passes it to its
/// task unchanged, and the task's handler reads it typed.
pub trait EventPayload: serde::de::DeserializeOwned + Send + 'static {
    const EVENT: EventType;
}

/// The JSON payload stored for `event`.
pub fn event_payload(event: &DomainEvent) -> Value {
    let fields = event.payload().into_iter();
    Value::Object(
        fields
            .map(|(name, v)| (name.to_string(), json(v)))
            .collect::<Map<_, _>>(),
    )
}

fn json(value: PayloadValue<'_>) -> Value {
    match value {
        PayloadValue::Id(id) => Value::String(Uuid::from_u128(id).to_string()),
        PayloadValue::Text(text) => Value::String(text.to_string()),
        PayloadValue::Time(at) => {
            let at: DateTime<Utc> = DateTime::from_timestamp_millis(at.0).unwrap_or_default();
            serde_json::to_value(at).unwrap_or(Value::Null)
        }
        PayloadValue::Number(n) => serde_json::json!(n),
        PayloadValue::OptNumber(n) => serde_json::json!(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::events::SealedSecret;
    use campus_core::ids::*;
    use campus_core::values::Exam;
    use campus_core::Timestamp;
    use serde_json::json;

    /// Stored payloads keep the shape earlier releases wrote (handlers of rows already in the
    /// table read them).
    #[test]
    fn payloads_keep_their_stored_shape() {
        let grade = DomainEvent::ExamGradeNoteAdded {
            class_id: ClassId(1),
            student_id: UserId(2),
            institution_id: InstitutionId(3),
            exam: Exam::N3,
            note: 9.5,
            previous: None,
        };
        assert_eq!(
            event_payload(&grade),
            json!({
                "class_id": "00000000-0000-0000-0000-000000000001",
                "student_id": "00000000-0000-0000-0000-000000000002",
                "exam": "N3", "note": 9.5, "previous": null,
            })
        );
        let reset = DomainEvent::ResetPasswordTokenCreated {
            token_id: TokenId(4),
            user_id: UserId(2),
            institution_id: None,
            expires_at: Timestamp(1_700_000_000_123),
            sealed_token: SealedSecret("sealed".into()),
        };
        assert_eq!(
            event_payload(&reset),
            json!({
                "token_id": "00000000-0000-0000-0000-000000000004",
                "user_id": "00000000-0000-0000-0000-000000000002",
                "expires_at": "2023-11-14T22:13:20.123Z",
                "sealed_token": "sealed",
            })
        );
        let created = DomainEvent::TeacherCreated {
            user_id: UserId(5),
            institution_id: InstitutionId(3),
            email: "t@x.test".into(),
        };
        assert_eq!(
            event_payload(&created),
            json!({"user_id": "00000000-0000-0000-0000-000000000005", "email": "t@x.test"})
        );
    }
}
