//! Conversions between core values and their SQL/JSON forms. Events' JSON payloads are
//! written by `campus_ports::payloads::event_payload` (re-exported here).

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use campus_ports::payloads::event_payload;

pub fn uuid(v: u128) -> Uuid {
    Uuid::from_u128(v)
}

pub fn time(ts: campus_core::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ts.0).unwrap_or_default()
}
