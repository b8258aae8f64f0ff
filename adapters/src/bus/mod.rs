//! The event bus over RabbitMQ (AMQP 0-9-1, with lapin on tokio).
//!
//! - `rabbitmq`: [`RabbitBus`], the publisher behind the [`campus_ports::EventBus`] port — one
//!   lazily opened connection and confirm-mode channel, persistent messages to the durable topic
//!   exchange [`EXCHANGE`], each publish awaited until the broker confirms it.
//! - `consumer`: [`consume`], the consuming side for other services and `campus consume` — a
//!   durable queue bound to the exchange, manual acks, a dead-letter queue per queue.
//!
//! Topology (all durable):
//!
//! ```text
//! campus.events (topic) ──<binding keys>──▶ <queue> ──reject──▶ campus.events.dead (direct)
//!                                                                    │ routing key <queue>
//!                                                                    ▼
//!                                                               <queue>.dead
//! ```
//!
//! Routing keys are `<institution_id>.<EventType>` (`-.<EventType>` for an event of no
//! institution): `#` takes everything, `*.EnrollmentCreated` one event type, `<id>.#` one
//! institution.
//!
//! No URL, and so no password, ever reaches a log or an error message: both name the broker by
//! `host:port` and virtual host only.

pub mod consumer;
pub mod rabbitmq;

pub use consumer::{
    consume, dead_letter_queue, declare_queue, delete_queue, Delivered, Verdict,
    DEAD_LETTER_EXCHANGE,
};
pub use rabbitmq::{RabbitBus, EXCHANGE};

/// Helpers of the bus's tests: the broker they use and a guard deleting their queues.
#[cfg(test)]
pub(crate) mod testing {
    use super::rabbitmq::{connect, parse_url};
    use lapin::options::QueueDeleteOptions;
    use std::time::Duration;

    /// The variable naming the broker the tests use.
    pub(crate) const TEST_BROKER_VAR: &str = "CAMPUS_TEST_AMQP_URL";

    /// `CAMPUS_TEST_AMQP_URL`, else the local RabbitMQ as `guest`.
    pub(crate) fn broker_url() -> String {
        std::env::var(TEST_BROKER_VAR)
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
    }

    /// A connection to the test broker; panics saying how to point the tests at one.
    pub(crate) async fn broker() -> lapin::Connection {
        let uri = parse_url(&broker_url()).expect("the test broker's URL");
        match connect(&uri, Duration::from_secs(5)).await {
            Ok(connection) => connection,
            Err(e) => panic!(
                "the bus tests need RabbitMQ (amqp://guest:guest@127.0.0.1:5672/%2f, or set \
                 {TEST_BROKER_VAR}): {e}"
            ),
        }
    }

    /// A queue name no other test uses.
    pub(crate) fn unique_queue(prefix: &str) -> String {
        format!("campus-test.{prefix}.{}", uuid::Uuid::new_v4().simple())
    }

    /// Deletes its queues when dropped, whether the test passed or panicked.
    pub(crate) struct DeleteQueues(pub(crate) Vec<String>);

    impl Drop for DeleteQueues {
        fn drop(&mut self) {
            let queues = std::mem::take(&mut self.0);
            // On a thread of its own: the test's runtime may be the one unwinding.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let uri = parse_url(&broker_url()).ok()?;
                    let connection = connect(&uri, Duration::from_secs(5)).await.ok()?;
                    let channel = connection.create_channel().await.ok()?;
                    for queue in queues {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                    let _ = connection.close(200, "OK".into()).await;
                    Some(())
                })
            })
            .join();
        }
    }
}
