//! [`RabbitBus`]: the [`EventBus`] port over RabbitMQ, and the connection helpers the consumer
//! shares (URL parsing, connecting with a timeout, declaring the exchange, error mapping).
//!
//! Nothing connects until the first `declare` or `publish`. The bus then keeps one connection
//! and one channel in confirm mode; any error drops both, so the next call reconnects — the
//! engine's task retries are the backoff. A connect attempt and a publisher confirm each have
//! a timeout, so a task never hangs on an unreachable or silent broker.

use campus_core::DomainError;
use campus_ports::{BusMessage, EventBus, PortError};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The durable topic exchange every domain event is published to.
pub const EXCHANGE: &str = "campus.events";

/// How long a connect attempt (TCP, TLS, AMQP handshake, channel, topology) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a publish may wait for the broker's confirm before the link is dropped.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// The content type of every message: the body is the webhook delivery's JSON.
const CONTENT_TYPE: &str = "application/json";

/// AMQP delivery mode 2: the broker writes the message to disk (with a durable queue, it
/// survives a broker restart).
const PERSISTENT: u8 = 2;

/// The headers carrying the correlation id and the event type.
pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";
pub(crate) const EVENT_TYPE_HEADER: &str = "x-event-type";

/// The name the broker shows for Campus's connections.
const CONNECTION_NAME: &str = "campus";

/// Publishes domain events to RabbitMQ with publisher confirms.
pub struct RabbitBus {
    uri: AMQPUri,
    endpoint: String,
    connect_timeout: Duration,
    confirm_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    link: Option<Link>,
    /// Links opened so far: tells a failed publish whether the link it used is still the
    /// current one (and so the one to drop).
    opened: u64,
    /// When the last connect attempt failed, and why (cleared by a successful one).
    failed: Option<(Instant, String)>,
}

/// One connection and its confirm-mode channel.
struct Link {
    id: u64,
    connection: Connection,
    channel: Channel,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

impl RabbitBus {
    /// A bus publishing to the broker at `url` (`amqp://user:password@host:5672/%2f`, or
    /// `amqps://` for TLS). Only checks the URL's syntax: nothing connects until the first
    /// `declare` or `publish`.
    pub fn new(url: &str) -> Result<Self, PortError> {
        let uri = parse_url(url)?;
        Ok(RabbitBus {
            endpoint: endpoint(&uri),
            uri,
            connect_timeout: CONNECT_TIMEOUT,
            confirm_timeout: CONFIRM_TIMEOUT,
            state: Mutex::new(State::default()),
        })
    }

    /// Replaces the connect timeout ([`CONNECT_TIMEOUT`]) and the confirm timeout
    /// ([`CONFIRM_TIMEOUT`]).
    pub fn with_timeouts(mut self, connect: Duration, confirm: Duration) -> Self {
        self.connect_timeout = connect;
        self.confirm_timeout = confirm;
        self
    }

    /// The broker as `host:port` and virtual host: safe to log (no credentials).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the bus holds an open connection and channel (it never connects on its own).
    pub async fn is_connected(&self) -> bool {
        self.state
            .lock()
            .await
            .link
            .as_ref()
            .is_some_and(Link::usable)
    }

    /// The current channel (and its link's id), connecting first when there is none or the
    /// one held has closed. Holding the lock while connecting keeps one connection however
    /// many tasks publish at once; the callers that queued behind a failed attempt share its
    /// error instead of each waiting for an attempt of their own.
    async fn channel(&self) -> Result<(u64, Channel), PortError> {
        let asked = Instant::now();
        let mut state = self.state.lock().await;
        if let Some(link) = &state.link {
            if link.usable() {
                return Ok((link.id, link.channel.clone()));
            }
            tracing::info!(endpoint = %self.endpoint, "RabbitMQ link closed; reconnecting");
            state.link = None;
        }
        if let Some((at, error)) = &state.failed {
            if *at >= asked {
                return Err(PortError::Unavailable(error.clone()));
            }
        }
        let (connection, channel) = match self.open().await {
            Ok(opened) => opened,
            Err(e) => {
                if let PortError::Unavailable(error) = &e {
                    state.failed = Some((Instant::now(), error.clone()));
                }
                return Err(e);
            }
        };
        state.failed = None;
        state.opened += 1;
        let id = state.opened;
        tracing::info!(endpoint = %self.endpoint, "connected to RabbitMQ");
        state.link = Some(Link {
            id,
            connection,
            channel: channel.clone(),
        });
        Ok((id, channel))
    }

    /// Connects and opens a channel in confirm mode, declaring the exchange: all of it within
    /// the connect timeout.
    async fn open(&self) -> Result<(Connection, Channel), PortError> {
        let deadline = Instant::now() + self.connect_timeout;
        let connection = connect(&self.uri, self.connect_timeout).await?;
        let channel = tokio::time::timeout_at(deadline.into(), async {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            declare_exchange(&channel).await?;
            Ok::<_, lapin::Error>(channel)
        })
        .await
        .map_err(|_| self.timed_out("opening a channel"))?
        .map_err(|e| unavailable(&self.endpoint, "opening a channel", &e))?;
        Ok((connection, channel))
    }

    /// Drops link `id` after an error on it, unless it was already replaced.
    async fn forget(&self, id: u64, error: &PortError) {
        let mut state = self.state.lock().await;
        if state.link.as_ref().is_some_and(|link| link.id == id) {
            state.link = None;
            tracing::warn!(
                endpoint = %self.endpoint,
                error = %error,
                "dropped the RabbitMQ connection; the next publish reconnects"
            );
        }
    }

    fn timed_out(&self, doing: &str) -> PortError {
        PortError::Unavailable(format!(
            "RabbitMQ at {}: {doing} took longer than {:?}",
            self.endpoint, self.connect_timeout
        ))
    }
}

impl fmt::Debug for RabbitBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it holds the password.
        f.debug_struct("RabbitBus")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl EventBus for RabbitBus {
    async fn declare(&self) -> Result<(), PortError> {
        let (id, channel) = self.channel().await?;
        let declared = tokio::time::timeout(self.connect_timeout, declare_exchange(&channel))
            .await
            .map_err(|_| self.timed_out("declaring the exchange"))
            .and_then(|r| r.map_err(|e| unavailable(&self.endpoint, "declaring the exchange", &e)));
        if let Err(e) = &declared {
            self.forget(id, e).await;
        }
        declared
    }

    async fn publish(&self, message: &BusMessage) -> Result<(), PortError> {
        // A message the broker cannot take is refused before connecting: no retry fixes it.
        let routing_key = short("routing_key", &message.routing_key)?;
        let properties = properties(message)?;
        let (id, channel) = self.channel().await?;
        let confirmed = tokio::time::timeout(self.confirm_timeout, async {
            channel
                .basic_publish(
                    EXCHANGE.into(),
                    routing_key,
                    BasicPublishOptions::default(),
                    &message.body,
                    properties,
                )
                .await?
                .await
        })
        .await;
        let failed = match confirmed {
            Ok(Ok(Confirmation::Ack(_))) => return Ok(()),
            // The broker is up but could not take it (e.g. a full disk): keep the link.
            Ok(Ok(Confirmation::Nack(_))) => {
                return Err(PortError::Unavailable(
                    "the broker refused the message".into(),
                ))
            }
            Ok(Ok(Confirmation::NotRequested)) => PortError::Unavailable(format!(
                "RabbitMQ at {}: the channel is not in confirm mode",
                self.endpoint
            )),
            Ok(Err(e)) => unavailable(&self.endpoint, "publishing", &e),
            Err(_) => PortError::Unavailable(format!(
                "RabbitMQ at {}: no publisher confirm within {:?}",
                self.endpoint, self.confirm_timeout
            )),
        };
        self.forget(id, &failed).await;
        Err(failed)
    }
}

/// The AMQP properties of `message`: persistent JSON, its id, its type and the headers.
fn properties(message: &BusMessage) -> Result<BasicProperties, PortError> {
    let mut headers = FieldTable::default();
    headers.insert(
        EVENT_TYPE_HEADER.into(),
        AMQPValue::LongString(LongString::from(message.event_type.as_str())),
    );
    if let Some(correlation_id) = &message.correlation_id {
        headers.insert(
            CORRELATION_HEADER.into(),
            AMQPValue::LongString(LongString::from(correlation_id.as_str())),
        );
    }
    Ok(BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(CONTENT_TYPE.into())
        .with_message_id(short("message_id", &message.message_id)?)
        .with_type(short("event_type", &message.event_type)?)
        .with_headers(headers))
}

/// `value` as an AMQP short string (at most 255 bytes); longer is refused for good.
pub(crate) fn short(field: &'static str, value: &str) -> Result<ShortString, PortError> {
    ShortString::try_new(value).map_err(|e| {
        PortError::Domain(DomainError::Invalid {
            field,
            message: e.to_string(),
        })
    })
}

/// Parses an AMQP URL. The error never quotes the URL: it holds the password.
pub(crate) fn parse_url(url: &str) -> Result<AMQPUri, PortError> {
    url.parse::<AMQPUri>().map_err(|_| {
        PortError::Unavailable(
            "the RabbitMQ URL is invalid (expected amqp[s]://user:password@host:port/vhost)".into(),
        )
    })
}

/// The broker of `uri` as `host:port (vhost v)`, for logs and errors.
pub(crate) fn endpoint(uri: &AMQPUri) -> String {
    let scheme = match uri.scheme {
        AMQPScheme::AMQP => "amqp",
        AMQPScheme::AMQPS => "amqps",
    };
    format!(
        "{scheme}://{}:{} (vhost {})",
        uri.authority.host, uri.authority.port, uri.vhost
    )
}

/// Opens a connection to `uri`, giving up after `timeout`.
pub(crate) async fn connect(uri: &AMQPUri, timeout: Duration) -> Result<Connection, PortError> {
    let endpoint = endpoint(uri);
    let properties = ConnectionProperties::default().with_connection_name(CONNECTION_NAME.into());
    tokio::time::timeout(timeout, Connection::connect_uri(uri.clone(), properties))
        .await
        .map_err(|_| {
            PortError::Unavailable(format!(
                "RabbitMQ at {endpoint}: no connection within {timeout:?}"
            ))
        })?
        .map_err(|e| unavailable(&endpoint, "connecting", &e))
}

/// Declares [`EXCHANGE`]: a durable topic exchange (idempotent).
pub(crate) async fn declare_exchange(channel: &Channel) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// A lapin error as `Unavailable`, naming the broker by its endpoint (lapin's errors carry
/// no credentials).
pub(crate) fn unavailable(endpoint: &str, doing: &str, error: &lapin::Error) -> PortError {
    PortError::Unavailable(format!("RabbitMQ at {endpoint}: {doing}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::consumer::declare_queue;
    use crate::bus::testing::{broker, broker_url, unique_queue, DeleteQueues};
    use lapin::options::BasicGetOptions;
    use uuid::Uuid;

    fn message(routing_key: &str, body: &str) -> BusMessage {
        BusMessage {
            message_id: Uuid::now_v7().to_string(),
            routing_key: routing_key.into(),
            event_type: "BusTested".into(),
            correlation_id: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn an_invalid_url_is_refused_without_quoting_it() {
        let err = RabbitBus::new("guest:s3cret-password@nowhere").unwrap_err();
        assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn the_endpoint_and_debug_never_show_the_password() {
        let bus = RabbitBus::new("amqp://campus:s3cret-password@broker.example:5673/prod").unwrap();
        assert_eq!(bus.endpoint(), "amqp://broker.example:5673 (vhost prod)");
        assert!(!format!("{bus:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn a_message_the_broker_cannot_take_is_refused_for_good() {
        // No broker needed: it is refused before connecting.
        let bus = RabbitBus::new("amqp://guest:guest@127.0.0.1:1/%2f").unwrap();
        let err = bus
            .publish(&message(&"x".repeat(256), "{}"))
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Domain(_)), "{err:?}");
        assert!(!bus.is_connected().await);
    }

    #[tokio::test]
    async fn new_does_not_connect_and_a_closed_port_fails_within_the_timeout() {
        let started = Instant::now();
        let bus = RabbitBus::new("amqp://guest:s3cret@127.0.0.1:1/%2f").unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(!bus.is_connected().await);

        let started = Instant::now();
        let err = bus
            .publish(&message("-.BusTested", "{}"))
            .await
            .unwrap_err();
        assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(1));
        let PortError::Unavailable(text) = &err else {
            panic!("expected Unavailable, got {err:?}");
        };
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(bus.declare().await.is_err());
        assert!(!bus.is_connected().await);
    }

    #[tokio::test]
    async fn a_silent_broker_fails_at_the_connect_timeout() {
        // Accepts connections and never answers: the AMQP handshake hangs.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let timeout = Duration::from_millis(300);
        let bus = RabbitBus::new(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
            .unwrap()
            .with_timeouts(timeout, timeout);

        let started = Instant::now();
        let err = bus
            .publish(&message("-.BusTested", "{}"))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took >= timeout && took < timeout * 5, "{took:?}");
        assert!(
            matches!(&err, PortError::Unavailable(text) if text.contains("no connection within")),
            "{err:?}"
        );

        // Publishes queued behind a failing attempt share its error: five at once fail after
        // one timeout, not five in a row.
        let started = Instant::now();
        let published = futures::future::join_all(
            (0..5).map(|_| async { bus.publish(&message("-.BusTested", "{}")).await }),
        )
        .await;
        let took = started.elapsed();
        assert!(published.iter().all(Result::is_err));
        assert!(took < timeout * 3, "{took:?}");
        held.abort();
    }

    /// Runs `rabbitmqctl start_app` when dropped unless the test already restarted the app,
    /// so a failing test never leaves the broker stopped.
    struct StartAppOnDrop {
        started: bool,
    }

    impl Drop for StartAppOnDrop {
        fn drop(&mut self) {
            if !self.started {
                let _ = std::process::Command::new("rabbitmqctl")
                    .arg("start_app")
                    .status();
            }
        }
    }

    async fn rabbitmqctl(command: &str) {
        let run = tokio::process::Command::new("rabbitmqctl")
            .arg(command)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .unwrap_or_else(|_| panic!("rabbitmqctl {command} took over 2 minutes"))
            .unwrap_or_else(|e| panic!("rabbitmqctl {command}: {e}"));
        assert!(
            output.status.success(),
            "rabbitmqctl {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Polls until `attempt` returns `Some`, or panics at `deadline` saying what it awaited.
    async fn eventually<T, F, Fut>(what: &str, within: Duration, mut attempt: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + within;
        loop {
            if let Some(value) = attempt().await {
                return value;
            }
            assert!(Instant::now() < deadline, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops and restarts the broker's app: run it alone, never beside other RabbitMQ tests
    /// (nextest: the `rabbitmq` test group; cargo test: `--test-threads=1`).
    #[tokio::test]
    async fn broker_restart_the_bus_reconnects_and_persistent_messages_survive() {
        let url = broker_url();
        drop(broker().await); // A clear failure when there is no broker.
        let queue = unique_queue("restart");
        let _queues = DeleteQueues(vec![queue.clone(), format!("{queue}.dead")]);
        let institution = Uuid::new_v4().simple().to_string();
        declare_queue(&url, &queue, &[format!("{institution}.#")])
            .await
            .unwrap();
        let routing_key = BusMessage::routing_key(Some(&institution), "BusTested");

        let bus = RabbitBus::new(&url).unwrap();
        bus.declare().await.unwrap();
        assert!(bus.is_connected().await);
        let before = message(&routing_key, r#"{"n":1}"#);
        bus.publish(&before).await.unwrap();

        let mut restart = StartAppOnDrop { started: false };
        let stopping = Instant::now();
        rabbitmqctl("stop_app").await;
        let stopped_in = stopping.elapsed();
        // The broker is down: publishing fails, and fails fast.
        let while_down = message(&routing_key, r#"{"n":0}"#);
        let err = bus.publish(&while_down).await.unwrap_err();
        assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");

        let starting = Instant::now();
        rabbitmqctl("start_app").await;
        restart.started = true;
        let uri = parse_url(&url).unwrap();
        eventually(
            "RabbitMQ accepting connections",
            Duration::from_secs(60),
            || async { connect(&uri, CONNECT_TIMEOUT).await.ok() },
        )
        .await;
        let started_in = starting.elapsed();

        let after = message(&routing_key, r#"{"n":2}"#);
        let reconnecting = Instant::now();
        eventually(
            "a publish after the restart",
            Duration::from_secs(30),
            || async { bus.publish(&after).await.ok() },
        )
        .await;
        assert!(bus.is_connected().await);
        eprintln!(
            "stop_app {stopped_in:?}, start_app until connectable {started_in:?}, \
             publish after restart {:?}",
            reconnecting.elapsed()
        );

        // Both messages are in the durable queue: the first, persistent, survived the restart.
        let connection = broker().await;
        let channel = connection.create_channel().await.unwrap();
        let mut ids = Vec::new();
        while let Some(got) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            ids.push(
                got.delivery
                    .properties
                    .message_id()
                    .clone()
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(ids, vec![before.message_id, after.message_id]);
        let _ = connection.close(200, "OK".into()).await;
    }
}
