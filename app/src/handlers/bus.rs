//! The event bus bridge: with `CAMPUS_BUS_URL` set, every event an institution may receive
//! by webhook is also published to the broker by one `publish_event` task (its payload the
//! webhook message body), a task like any other: retried while the broker is down, dead
//! after its attempts, reprocessable from the admin screen. The broker has the message when
//! the task succeeds (publisher confirms); consumers deduplicate by `message_id`, the event
//! id, since a retried task may publish twice.

use super::webhooks::WebhookMessage;
use crate::engine::{Handler, TaskError};
use async_trait::async_trait;
use campus_ports::{BusMessage, ClaimedTask, EventBus, PortError};
use std::sync::Arc;

/// Publishes one event to the bus.
pub struct PublishEvent(pub Arc<dyn EventBus>);

#[async_trait]
impl Handler for PublishEvent {
    const TASK_TYPE: &'static str = "publish_event";
    type Input = WebhookMessage;

    async fn handle(&self, message: WebhookMessage, _task: &ClaimedTask) -> Result<(), TaskError> {
        let body = serde_json::to_vec(&message)
            .map_err(|e| TaskError::permanent(format!("the message does not serialize: {e}")))?;
        let published = BusMessage {
            routing_key: BusMessage::routing_key(
                Some(&message.institution_id),
                &message.event_type,
            ),
            message_id: message.id,
            event_type: message.event_type,
            correlation_id: message.correlation_id,
            body,
        };
        self.0.publish(&published).await.map_err(|e| match e {
            PortError::Unavailable(why) => TaskError::transient(format!("the bus: {why}")),
            other => TaskError::transient(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::{InstitutionId, TaskId};
    use campus_core::Timestamp;
    use campus_ports::MockEventBus;

    fn task() -> ClaimedTask {
        ClaimedTask {
            id: TaskId(10),
            task_type: PublishEvent::TASK_TYPE.into(),
            payload: serde_json::to_string(&message()).unwrap(),
            institution_id: Some(InstitutionId(7)),
            event_id: None,
            correlation_id: Some("corr-1".into()),
            lineage_id: TaskId(10),
            attempt: 1,
            max_attempts: 5,
            created_at: Timestamp(0),
        }
    }

    fn message() -> WebhookMessage {
        WebhookMessage::new(
            "0190c1a2-0000-7000-8000-000000000001".into(),
            "StudentEnrolled".into(),
            Timestamp(1_700_000_000_000),
            InstitutionId(7),
            Some("corr-1".into()),
            serde_json::json!({"class_id": "c"}),
        )
    }

    #[tokio::test]
    async fn an_event_is_published_with_its_id_key_and_body() {
        let mut bus = MockEventBus::new();
        let expected_body = serde_json::to_vec(&message()).unwrap();
        bus.expect_publish()
            .withf(move |m| {
                m.message_id == "0190c1a2-0000-7000-8000-000000000001"
                    && m.routing_key == "00000000-0000-0000-0000-000000000007.StudentEnrolled"
                    && m.event_type == "StudentEnrolled"
                    && m.correlation_id.as_deref() == Some("corr-1")
                    && m.body == expected_body
            })
            .times(1)
            .returning(|_| Ok(()));
        PublishEvent(Arc::new(bus))
            .handle(message(), &task())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_broker_down_is_a_transient_failure() {
        let mut bus = MockEventBus::new();
        bus.expect_publish()
            .returning(|_| Err(PortError::Unavailable("connection refused".into())));
        let err = PublishEvent(Arc::new(bus))
            .handle(message(), &task())
            .await
            .unwrap_err();
        assert!(!err.permanent, "{err:?}");
        assert!(err.message.contains("connection refused"), "{err:?}");
    }
}
