//! The event bus: domain events handed to a message broker for other services (reporting,
//! mobile sync). Publishing one event is a task of the engine, so retries, dead letters and
//! reprocessing apply; the bus only has to publish one message and say when the broker has
//! it (publisher confirms). Delivery to consumers is at least once: a consumer
//! deduplicates by `message_id`, the event id.

use crate::PortError;
use async_trait::async_trait;

/// One domain event as a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The event's id: what consumers deduplicate by.
    pub message_id: String,
    /// `<institution_id>.<EventType>`; `-` for an event of no institution.
    pub routing_key: String,
    pub event_type: String,
    pub correlation_id: Option<String>,
    /// JSON: the same body as a webhook delivery.
    pub body: Vec<u8>,
}

impl BusMessage {
    /// The routing key of an event of `event_type` in `institution` (none: `-`).
    pub fn routing_key(institution: Option<&str>, event_type: &str) -> String {
        format!("{}.{event_type}", institution.unwrap_or("-"))
    }
}

/// A broker that takes domain events.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Declares what publishing needs (the exchange); idempotent.
    async fn declare(&self) -> Result<(), PortError>;

    /// Publishes `message` persistently and returns once the broker confirmed it.
    /// `Unavailable` when the broker cannot be reached or refused it (the task retries).
    async fn publish(&self, message: &BusMessage) -> Result<(), PortError>;
}
