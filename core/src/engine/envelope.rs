//! What a stored event looks like to the engine, and what a handler plans from it.

use crate::ids::{EventId, InstitutionId};
use crate::time::Timestamp;

/// A stored domain event as the engine routes it. `P` is the payload representation chosen
/// by the adapters (JSON there); the engine never looks inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope<P> {
    pub id: EventId,
    /// Stable, past-tense type name, e.g. `ExamGradeNoteAdded`.
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: u128,
    pub institution_id: Option<InstitutionId>,
    pub payload: P,
    pub occurred_at: Timestamp,
    /// The id of the request that caused the event (a reprocessed copy keeps its
    /// original's; the operator's request id is stored beside it, not here).
    pub correlation_id: Option<String>,
    /// Set on copies made by reprocessing: the event this one copies.
    pub reprocessed_from: Option<EventId>,
}

/// A task an event handler wants to run for an event.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTask<P> {
    /// Name of the task type; a task runner is registered under it.
    pub task_type: String,
    /// The handler that planned it (one task per event and handler).
    pub handler: String,
    pub payload: P,
    /// Overrides the default maximum number of attempts for this task.
    pub max_attempts: Option<u32>,
    /// The task type's priority (see [`crate::engine::scheduling`]).
    pub priority: crate::engine::Priority,
    /// Tasks with the same key run one at a time, in their events' order (see
    /// [`ordering_key`]); `None`: no order.
    pub ordering_key: Option<String>,
}

/// The ordering key that makes `handler`'s tasks of one aggregate's events run one at a time
/// in the order the events were recorded.
pub fn ordering_key(handler: &str, aggregate_type: &str, aggregate_id: u128) -> String {
    format!("{handler}:{aggregate_type}:{aggregate_id:032x}")
}

/// The unique key of the task `handler` plans for event `event`: dispatching the same event
/// twice can never create a second task.
pub fn idempotency_key(event: EventId, handler: &str) -> String {
    format!("{:032x}:{handler}", event.0)
}

/// The longest correlation id accepted from a request (and sent in an e-mail header).
pub const MAX_CORRELATION_ID_LEN: usize = 64;

/// Whether `raw` may serve as a correlation id taken from outside (a request header) and be
/// written into another protocol's header (an e-mail's `X-Correlation-Id`): 1 to
/// [`MAX_CORRELATION_ID_LEN`] characters among ASCII letters, digits and `-_.:`.
pub fn valid_correlation_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_CORRELATION_ID_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_short_and_header_safe() {
        assert!(valid_correlation_id("req-abc_1.2:3"));
        assert!(valid_correlation_id(&"a".repeat(64)));
        assert!(!valid_correlation_id(&"a".repeat(65)));
        assert!(!valid_correlation_id(""));
        for bad in ["a b", "a\r\nBcc: x", "é", "a;b", "a/b"] {
            assert!(!valid_correlation_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn idempotency_key_differs_per_event_and_handler() {
        let a = idempotency_key(EventId(1), "h");
        assert_eq!(a, idempotency_key(EventId(1), "h"));
        assert_ne!(a, idempotency_key(EventId(2), "h"));
        assert_ne!(a, idempotency_key(EventId(1), "g"));
    }
}
