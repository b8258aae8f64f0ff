//! Conversions between core values and their SQL/JSON forms. The JSON shapes of domain
//! events live in `campus_ports::payloads` (shared with the handlers); they are re-exported
//! here for the adapters' own use.

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use campus_ports::payloads::{
    event_payload, ExamGradeNoteAddedPayload, InstitutionCreatedPayload,
    ResetPasswordTokenCreatedPayload,
};

pub fn uuid(v: u128) -> Uuid {
    Uuid::from_u128(v)
}

pub fn time(ts: campus_core::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ts.0).unwrap_or_default()
}
