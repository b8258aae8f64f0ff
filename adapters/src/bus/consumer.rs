//! The consuming side of the bus, for other services and `campus consume`: [`consume`] reads
//! one durable queue bound to [`EXCHANGE`] and hands each message to a handler, which acks or
//! rejects it; [`declare_queue`] declares the same topology without consuming.
//!
//! # Contract
//!
//! - **At least once.** A message is acked only after the handler returned [`Verdict::Ack`].
//!   A consumer that stops or loses its connection first gets the message again (with
//!   `redelivered` set), and Campus itself may publish an event twice (a publish task retried
//!   after the broker took the message but before its confirm arrived). Handlers must be
//!   idempotent: deduplicate by [`Delivered::message_id`], the event's id.
//! - **Dead letters.** [`Verdict::Reject`] rejects without requeueing: the broker moves the
//!   message to the queue's dead-letter queue `<queue>.dead`, through the durable *direct*
//!   exchange [`DEAD_LETTER_EXCHANGE`] with the queue's own name as routing key (direct rather
//!   than fanout so that each queue's rejects reach only its own dead-letter queue, however
//!   many queues share the exchange). The broker adds an `x-death` header (the original queue,
//!   exchange and routing keys); nothing reads the dead-letter queue on its own — inspect it,
//!   then move messages back or purge them with the broker's tools.
//! - **Order.** Messages usually arrive in publishing order, but not always: a publish that
//!   is retried, a redelivery after a consumer failed, or several consumers on one queue
//!   reorder them, also the events of one aggregate. Every event body carries `occurred_at`
//!   and event ids are UUIDv7 (time-ordered), so a consumer that cares can order by them —
//!   e.g. ignore an event older than the last one it applied for that aggregate.
//! - **Declaring.** Messages published while no queue is bound are dropped by the broker (the
//!   bus publishes without `mandatory`): declare a new consumer's queue ([`declare_queue`], or
//!   a first run of [`consume`]) before relying on it receiving everything. Declaring is
//!   idempotent and only ever adds bindings; a queue declared before with other arguments is
//!   refused by the broker (`PRECONDITION_FAILED`).
//! - **Prefetch.** Up to `prefetch` messages are in flight unacked; the handler runs them one
//!   at a time, in delivery order.

use super::rabbitmq::{
    connect, declare_exchange, endpoint, parse_url, short, unavailable, CONNECT_TIMEOUT,
    CORRELATION_HEADER, EVENT_TYPE_HEADER, EXCHANGE,
};
use campus_core::DomainError;
use campus_ports::PortError;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use std::future::Future;
use tokio::sync::watch;

/// The durable direct exchange the queues' rejected messages go to, routed by queue name.
pub const DEAD_LETTER_EXCHANGE: &str = "campus.events.dead";

/// What the handler decided about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done with: the broker forgets it.
    Ack,
    /// Cannot be processed, now or on a retry: it goes to `<queue>.dead`.
    Reject,
}

/// One message as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The event's id: what to deduplicate by.
    pub message_id: Option<String>,
    /// `<institution_id>.<EventType>` (`-.<EventType>` for an event of no institution).
    pub routing_key: String,
    /// The AMQP `type` property, else the `x-event-type` header.
    pub event_type: Option<String>,
    /// The `x-correlation-id` header: the request that caused the event.
    pub correlation_id: Option<String>,
    /// The broker delivered it before, to this or another consumer, which did not ack it.
    pub redelivered: bool,
    /// The event as JSON (the body of a webhook delivery).
    pub body: Vec<u8>,
}

/// The dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// Declares `queue`'s topology (see the module docs) and returns: for a deployment step,
/// or so a new consumer's queue exists before the events it wants are published.
pub async fn declare_queue(url: &str, queue: &str, bindings: &[String]) -> Result<(), PortError> {
    check_names(queue, bindings)?;
    on_a_channel(
        url,
        &format!("declaring queue {queue}"),
        |channel| async move { declare_topology(&channel, queue, bindings).await },
    )
    .await
}

/// Deletes `queue` and its dead-letter queue, with what they hold: when a consumer goes
/// away for good (and after tests and benchmarks).
pub async fn delete_queue(url: &str, queue: &str) -> Result<(), PortError> {
    check_names(queue, &[])?;
    on_a_channel(
        url,
        &format!("deleting queue {queue}"),
        |channel| async move {
            for name in [queue.to_string(), dead_letter_queue(queue)] {
                channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await?;
            }
            Ok(())
        },
    )
    .await
}

/// Runs `work` on a channel of a connection of its own, within [`CONNECT_TIMEOUT`], and
/// closes the connection.
async fn on_a_channel<F, Fut>(url: &str, doing: &str, work: F) -> Result<(), PortError>
where
    F: FnOnce(Channel) -> Fut,
    Fut: Future<Output = Result<(), lapin::Error>>,
{
    let uri = parse_url(url)?;
    let endpoint = endpoint(&uri);
    let connection = connect(&uri, CONNECT_TIMEOUT).await?;
    let done = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let channel = connection.create_channel().await?;
        work(channel.clone()).await?;
        channel.close(200, "OK".into()).await
    })
    .await
    .map_err(|_| {
        PortError::Unavailable(format!(
            "RabbitMQ at {endpoint}: {doing} took longer than {CONNECT_TIMEOUT:?}"
        ))
    })?
    .map_err(|e| unavailable(&endpoint, doing, &e));
    let _ = connection.close(200, "OK".into()).await;
    done
}

/// Consumes `queue` — declared first, bound to [`EXCHANGE`] with each of `bindings` — calling
/// `handle` for each message, one at a time, and acking or rejecting it as it says. At most
/// `prefetch` messages are delivered ahead of the handler (0: no limit).
///
/// Returns `Ok` once `shutdown` turns true (after the message being handled is acked; the
/// unacked prefetched ones go back to the queue) or when the broker ends the consumer (the
/// queue was deleted); an error when the broker cannot be reached within [`CONNECT_TIMEOUT`],
/// refuses the topology, or the connection is lost. It never reconnects: the caller decides
/// whether and when to call it again. A dropped `shutdown` sender never stops it.
pub async fn consume<F, Fut>(
    url: &str,
    queue: &str,
    bindings: &[String],
    prefetch: u16,
    mut shutdown: watch::Receiver<bool>,
    mut handle: F,
) -> Result<(), PortError>
where
    F: FnMut(Delivered) -> Fut,
    Fut: Future<Output = Verdict>,
{
    check_names(queue, bindings)?;
    let uri = parse_url(url)?;
    let endpoint = endpoint(&uri);
    let connection = connect(&uri, CONNECT_TIMEOUT).await?;
    let tag = format!("campus-consume-{}", uuid::Uuid::new_v4().simple());
    let (channel, mut consumer) = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let channel = connection.create_channel().await?;
        declare_topology(&channel, queue, bindings).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(), // no_ack: false — manual acks
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((channel, consumer))
    })
    .await
    .map_err(|_| {
        PortError::Unavailable(format!(
            "RabbitMQ at {endpoint}: subscribing to {queue} took longer than {CONNECT_TIMEOUT:?}"
        ))
    })?
    .map_err(|e| unavailable(&endpoint, &format!("subscribing to {queue}"), &e))?;
    tracing::info!(%endpoint, queue, prefetch, "consuming");

    let outcome = loop {
        let next = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break Ok(()),
            next = consumer.next() => next,
        };
        let mut delivery = match next {
            None => {
                tracing::info!(%endpoint, queue, "the broker ended the consumer");
                break Ok(());
            }
            Some(Err(e)) => break Err(unavailable(&endpoint, &format!("consuming {queue}"), &e)),
            Some(Ok(delivery)) => delivery,
        };
        let delivered = delivered(&mut delivery);
        let settled = match handle(delivered).await {
            Verdict::Ack => delivery.ack(BasicAckOptions::default()).await,
            Verdict::Reject => delivery.reject(BasicRejectOptions { requeue: false }).await,
        };
        if let Err(e) = settled {
            // Not settled: the broker delivers it again (at least once).
            break Err(unavailable(&endpoint, "acknowledging a message", &e));
        }
    };
    if outcome.is_ok() {
        let _ = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
        let _ = connection.close(200, "OK".into()).await;
    }
    outcome
}

/// Resolves once `shutdown` holds true; never if its sender is gone without saying so.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Declares the exchange, the dead-letter exchange and queue, `queue` and its bindings.
async fn declare_topology(
    channel: &Channel,
    queue: &str,
    bindings: &[String],
) -> Result<(), lapin::Error> {
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    declare_exchange(channel).await?;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let dead = dead_letter_queue(queue);
    channel
        .queue_declare(dead.as_str().into(), durable_queue, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            DEAD_LETTER_EXCHANGE.into(),
            queue.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(DEAD_LETTER_EXCHANGE)),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(queue)),
    );
    channel
        .queue_declare(queue.into(), durable_queue, arguments)
        .await?;
    for binding in bindings {
        channel
            .queue_bind(
                queue.into(),
                EXCHANGE.into(),
                binding.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Refuses names the broker cannot take before anything panics on them (lapin's short strings
/// panic past 255 bytes): an empty queue name (the broker would make one up), a queue whose
/// dead-letter queue's name is too long, a binding key too long.
fn check_names(queue: &str, bindings: &[String]) -> Result<(), PortError> {
    if queue.is_empty() {
        return Err(PortError::Domain(DomainError::Invalid {
            field: "queue",
            message: "must not be empty".into(),
        }));
    }
    short("queue", &dead_letter_queue(queue))?;
    for binding in bindings {
        short("binding", binding)?;
    }
    Ok(())
}

/// The handler's view of `delivery` (its body moved out; the rest stays to ack it).
fn delivered(delivery: &mut Delivery) -> Delivered {
    let properties = &delivery.properties;
    let header = |name: &str| {
        properties
            .headers()
            .as_ref()
            .and_then(|headers| headers.inner().get(name))
            .and_then(|value| match value {
                AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
                AMQPValue::ShortString(s) => Some(s.to_string()),
                _ => None,
            })
    };
    Delivered {
        message_id: properties.message_id().as_ref().map(|s| s.to_string()),
        routing_key: delivery.routing_key.to_string(),
        event_type: properties
            .kind()
            .as_ref()
            .map(|s| s.to_string())
            .or_else(|| header(EVENT_TYPE_HEADER)),
        correlation_id: header(CORRELATION_HEADER),
        redelivered: delivery.redelivered,
        body: std::mem::take(&mut delivery.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::rabbitmq::RabbitBus;
    use crate::bus::testing::{broker, broker_url, unique_queue, DeleteQueues};
    use campus_ports::{BusMessage, EventBus};
    use lapin::options::BasicGetOptions;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    use tokio::sync::mpsc;
    use uuid::Uuid;

    /// How long a test waits for messages it published.
    const WITHIN: Duration = Duration::from_secs(15);

    /// Runs `consume` on `queue` in a task, sending what it is handed to the returned
    /// receiver and answering with `verdict`; the sender stops it.
    fn consuming(
        queue: &str,
        bindings: Vec<String>,
        verdict: fn(&Delivered) -> Verdict,
    ) -> (
        mpsc::UnboundedReceiver<Delivered>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<Result<(), PortError>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, shutdown) = watch::channel(false);
        let url = broker_url();
        let queue = queue.to_owned();
        let task = tokio::spawn(async move {
            consume(&url, &queue, &bindings, 8, shutdown, move |delivered| {
                let answer = verdict(&delivered);
                let _ = tx.send(delivered);
                async move { answer }
            })
            .await
        });
        (rx, stop, task)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Delivered>, deadline: Instant) -> Delivered {
        tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("the published messages within the deadline")
            .expect("the consumer is running")
    }

    fn header(properties: &lapin::BasicProperties, name: &str) -> Option<AMQPValue> {
        properties.headers().as_ref()?.inner().get(name).cloned()
    }

    #[tokio::test]
    async fn bus_messages_arrive_once_each_with_their_properties_and_body() {
        let url = broker_url();
        drop(broker().await); // A clear failure when there is no broker.
        let queue = unique_queue("all");
        let raw = unique_queue("raw");
        let _queues = DeleteQueues(vec![
            queue.clone(),
            dead_letter_queue(&queue),
            raw.clone(),
            dead_letter_queue(&raw),
        ]);
        let everything = vec!["#".to_string()];
        declare_queue(&url, &queue, &everything).await.unwrap();
        declare_queue(&url, &raw, &everything).await.unwrap();

        let institution = Uuid::new_v4().to_string();
        let published: Vec<BusMessage> = (0..20)
            .map(|n| {
                let id = Uuid::now_v7().to_string();
                BusMessage {
                    routing_key: BusMessage::routing_key(
                        (n % 4 != 0).then_some(institution.as_str()),
                        "EnrollmentCreated",
                    ),
                    event_type: "EnrollmentCreated".into(),
                    correlation_id: (n % 2 == 0).then(|| format!("req-{n}")),
                    body: format!(r#"{{"id":"{id}","n":{n},"name":"Zoë ✓"}}"#).into_bytes(),
                    message_id: id,
                }
            })
            .collect();
        let bus = RabbitBus::new(&url).unwrap();
        let started = Instant::now();
        for message in &published {
            bus.publish(message).await.unwrap();
        }
        let published_in = started.elapsed();

        // Through `consume`: each message once, as published. The queue takes every event on
        // the exchange, so other tests' messages are skipped.
        let (mut rx, stop, task) = consuming(&queue, everything.clone(), |_| Verdict::Ack);
        let expected: HashMap<&str, &BusMessage> = published
            .iter()
            .map(|m| (m.message_id.as_str(), m))
            .collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let deadline = Instant::now() + WITHIN;
        while seen.len() < expected.len() {
            let got = next(&mut rx, deadline).await;
            let Some(message) = got.message_id.as_deref().and_then(|id| expected.get(id)) else {
                continue;
            };
            *seen.entry(message.message_id.clone()).or_default() += 1;
            assert_eq!(got.routing_key, message.routing_key);
            assert_eq!(got.event_type.as_deref(), Some("EnrollmentCreated"));
            assert_eq!(got.correlation_id, message.correlation_id);
            assert!(!got.redelivered);
            assert_eq!(got.body, message.body);
        }
        let consumed_in = started.elapsed() - published_in;
        stop.send(true).unwrap();
        task.await
            .unwrap()
            .expect("consume ends cleanly on shutdown");
        while let Ok(got) = rx.try_recv() {
            if let Some(id) = got
                .message_id
                .filter(|id| expected.contains_key(id.as_str()))
            {
                *seen.entry(id).or_default() += 1;
            }
        }
        assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");

        // The raw AMQP properties, from the second queue.
        let connection = broker().await;
        let channel = connection.create_channel().await.unwrap();
        let mut checked = 0;
        while let Some(got) = channel
            .basic_get(raw.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let properties = &got.delivery.properties;
            let Some(message) = properties
                .message_id()
                .as_ref()
                .and_then(|id| expected.get(id.as_str()))
            else {
                continue;
            };
            checked += 1;
            assert_eq!(got.delivery.exchange.as_str(), EXCHANGE);
            assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
            assert_eq!(
                properties.content_type().as_ref().map(|s| s.as_str()),
                Some("application/json")
            );
            assert_eq!(
                properties.kind().as_ref().map(|s| s.as_str()),
                Some("EnrollmentCreated")
            );
            assert_eq!(
                header(properties, EVENT_TYPE_HEADER),
                Some(AMQPValue::LongString("EnrollmentCreated".into()))
            );
            assert_eq!(
                header(properties, CORRELATION_HEADER),
                message
                    .correlation_id
                    .as_deref()
                    .map(|id| AMQPValue::LongString(id.into()))
            );
            assert_eq!(got.delivery.data, message.body);
        }
        assert_eq!(checked, published.len());
        let _ = connection.close(200, "OK".into()).await;
        eprintln!(
            "published {} with confirms in {published_in:?}, consumed in {consumed_in:?}",
            published.len()
        );
    }

    #[tokio::test]
    async fn bus_a_rejected_message_goes_to_the_dead_letter_queue() {
        let url = broker_url();
        drop(broker().await);
        let queue = unique_queue("reject");
        let dead = dead_letter_queue(&queue);
        let _queues = DeleteQueues(vec![queue.clone(), dead.clone()]);
        let institution = Uuid::new_v4().to_string();
        let bindings = vec![format!("{institution}.#")];
        declare_queue(&url, &queue, &bindings).await.unwrap();

        let bus = RabbitBus::new(&url).unwrap();
        let message = |event_type: &str, body: &str| BusMessage {
            message_id: Uuid::now_v7().to_string(),
            routing_key: BusMessage::routing_key(Some(&institution), event_type),
            event_type: event_type.into(),
            correlation_id: Some("req-1".into()),
            body: body.as_bytes().to_vec(),
        };
        let poison = message("Poison", r#"{"bad":true}"#);
        let fine = message("Fine", r#"{"bad":false}"#);
        bus.publish(&poison).await.unwrap();
        bus.publish(&fine).await.unwrap();

        let (mut rx, stop, task) = consuming(&queue, bindings, |d| {
            if d.event_type.as_deref() == Some("Poison") {
                Verdict::Reject
            } else {
                Verdict::Ack
            }
        });
        let deadline = Instant::now() + WITHIN;
        let handled = [next(&mut rx, deadline).await, next(&mut rx, deadline).await];
        assert_eq!(
            handled.map(|d| d.message_id.unwrap()),
            [poison.message_id.clone(), fine.message_id.clone()]
        );
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
        assert!(rx.try_recv().is_err(), "nothing is redelivered");

        // The rejected one, and only it, is in the dead-letter queue, as published.
        let connection = broker().await;
        let channel = connection.create_channel().await.unwrap();
        let get = || channel.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true });
        let deadline = Instant::now() + WITHIN;
        let got = loop {
            if let Some(got) = get().await.unwrap() {
                break got;
            }
            assert!(
                Instant::now() < deadline,
                "no dead letter within {WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let properties = &got.delivery.properties;
        assert_eq!(
            properties.message_id().as_ref().map(|s| s.as_str()),
            Some(poison.message_id.as_str())
        );
        assert_eq!(got.delivery.data, poison.body);
        assert_eq!(got.delivery.exchange.as_str(), DEAD_LETTER_EXCHANGE);
        assert_eq!(got.delivery.routing_key.as_str(), queue);
        assert!(header(properties, "x-death").is_some(), "x-death");
        assert!(get().await.unwrap().is_none(), "only the rejected message");
        let _ = connection.close(200, "OK".into()).await;
    }

    #[tokio::test]
    async fn bus_names_the_broker_cannot_take_are_refused_before_connecting() {
        let url = "amqp://guest:guest@127.0.0.1:1/%2f";
        let (_stop, shutdown) = watch::channel(false);
        let refused = consume(url, "", &[], 1, shutdown, |_| async { Verdict::Ack }).await;
        assert!(matches!(refused, Err(PortError::Domain(_))), "{refused:?}");
        let long = "q".repeat(251);
        let refused = declare_queue(url, &long, &[]).await;
        assert!(matches!(refused, Err(PortError::Domain(_))), "{refused:?}");
        let refused = declare_queue(url, "q", &["k".repeat(256)]).await;
        assert!(matches!(refused, Err(PortError::Domain(_))), "{refused:?}");
        // A valid name reaches the (closed) port.
        let refused = declare_queue(url, "q", &[]).await;
        assert!(
            matches!(refused, Err(PortError::Unavailable(_))),
            "{refused:?}"
        );
    }
}
