//! Typed task handlers: a [`Handler`] names its task type and the shape of its input; the
//! engine-side wrapper [`Typed`] deserializes the payload once and hands it over. A payload
//! that does not deserialize never will, so it is a permanent failure saying why.

use super::registry::{TaskError, TaskHandler, TaskOptions};
use async_trait::async_trait;
use campus_ports::ClaimedTask;
use serde::de::DeserializeOwned;

/// Runs the tasks of one task type from their typed input. Must be idempotent per
/// `task.lineage_id`: a retry after a crash may run it again.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The task type it runs (a constant: routes name it as `MyHandler::TASK_TYPE`).
    const TASK_TYPE: &'static str;
    /// The task's payload, deserialized before [`Handler::handle`] is called.
    type Input: DeserializeOwned + Send + Sync;

    /// Attempts, timeout and concurrency limit of the type.
    fn options(&self) -> TaskOptions {
        TaskOptions::default()
    }

    async fn handle(&self, input: Self::Input, task: &ClaimedTask) -> Result<(), TaskError>;
}

/// The engine-side adapter of a typed handler.
pub struct Typed<H>(pub H);

#[async_trait]
impl<H: Handler> TaskHandler for Typed<H> {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        let input: H::Input = serde_json::from_str(&task.payload).map_err(|e| {
            TaskError::permanent(format!(
                "invalid payload for task type {}: {e}",
                H::TASK_TYPE
            ))
        })?;
        self.0.handle(input, task).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::TaskId;
    use campus_core::Timestamp;

    #[derive(serde::Deserialize)]
    struct Greeting {
        name: String,
    }

    struct Greeter;

    #[async_trait]
    impl Handler for Greeter {
        const TASK_TYPE: &'static str = "greet";
        type Input = Greeting;
        async fn handle(&self, input: Greeting, _: &ClaimedTask) -> Result<(), TaskError> {
            if input.name.is_empty() {
                return Err(TaskError::transient("no name yet"));
            }
            Ok(())
        }
    }

    fn task(payload: &str) -> ClaimedTask {
        ClaimedTask {
            id: TaskId(1),
            task_type: "greet".into(),
            payload: payload.into(),
            institution_id: None,
            event_id: None,
            correlation_id: None,
            lineage_id: TaskId(1),
            attempt: 1,
            max_attempts: 5,
            created_at: Timestamp(0),
        }
    }

    #[tokio::test]
    async fn the_input_arrives_typed_and_a_malformed_one_is_permanent() {
        let h = Typed(Greeter);
        assert_eq!(h.run(&task(r#"{"name":"Ana"}"#)).await, Ok(()));
        assert!(!h.run(&task(r#"{"name":""}"#)).await.unwrap_err().permanent);
        let e = h.run(&task(r#"{"nome":"Ana"}"#)).await.unwrap_err();
        assert!(e.permanent);
        assert!(
            e.message
                .starts_with("invalid payload for task type greet: missing field `name`"),
            "{}",
            e.message
        );
    }
}
