//! LISTEN/NOTIFY as a wake-up hint, never the source of truth.
//!
//! `Notifier` sends NOTIFY *after* commit, debounced per channel (at most one per `window`
//! per process): a NOTIFY inside a writing transaction would serialize every commit of the
//! cluster. `PgWakeUps` (the `WakeUps` port) LISTENs on every channel, re-LISTENs after a
//! reconnect and hands the hints to the daemon's loops (or the admin screen's live view); the
//! daemon also polls, so a lost notification only costs latency.

use campus_ports::{WakeStream, WakeUp, WakeUps};
use sqlx::postgres::PgListener;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// A NOTIFY channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// New domain events are waiting for dispatch.
    Events,
    /// New tasks are due.
    Tasks,
    /// Events or tasks changed status (dispatched, finished, rescued): for live views only,
    /// so it is debounced more (see [`CHANGES_WINDOW`]).
    Changes,
}

/// Shortest gap between two notifications of one channel from one process. The first poke
/// after a quiet spell is sent at once, so light-load latency does not change; under load a
/// busy dispatcher gathers for milliseconds anyway. With 5 ms instead of 1 ms (and the other
/// round-trip savings of the same change) an API request at 500 req/s costs about a fifth less
/// CPU at the same throughput and latency (docs/PERFORMANCE.md).
pub const NOTIFY_WINDOW: Duration = Duration::from_millis(5);

/// Shortest gap between two `campus_changes` notifications of one process.
pub const CHANGES_WINDOW: Duration = Duration::from_millis(250);

const CHANNELS: [Channel; 3] = [Channel::Events, Channel::Tasks, Channel::Changes];

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Events => "campus_events",
            Channel::Tasks => "campus_tasks",
            Channel::Changes => "campus_changes",
        }
    }

    fn named(name: &str) -> Option<Channel> {
        CHANNELS.into_iter().find(|c| c.name() == name)
    }
}

/// Sends debounced wake-up notifications after commits. Cloning shares the debouncer.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<[Arc<Notify>; 3]>>,
}

impl Notifier {
    /// Starts one background sender per channel on the current tokio runtime.
    pub fn spawn(pool: PgPool, window: Duration) -> Self {
        let pokes = Arc::new(CHANNELS.map(|_| Arc::new(Notify::new())));
        for (i, channel) in CHANNELS.into_iter().enumerate() {
            let poke = pokes[i].clone();
            let pool = pool.clone();
            let window = match channel {
                Channel::Changes => window.max(CHANGES_WINDOW),
                _ => window,
            };
            tokio::spawn(async move {
                loop {
                    poke.notified().await;
                    let sent = sqlx::query("SELECT pg_notify($1, '')")
                        .bind(channel.name())
                        .execute(&pool)
                        .await;
                    match sent {
                        Ok(_) => {}
                        Err(sqlx::Error::PoolClosed) => break,
                        // Polling covers a lost hint; nothing else to do.
                        Err(e) => {
                            tracing::debug!(channel = channel.name(), error = %e, "NOTIFY failed")
                        }
                    }
                    if !window.is_zero() {
                        tokio::time::sleep(window).await;
                    }
                }
            });
        }
        Notifier { inner: Some(pokes) }
    }

    /// A notifier that sends nothing (the daemon's polling still finds the work).
    pub fn disabled() -> Self {
        Notifier { inner: None }
    }

    /// Asks for a NOTIFY on `channel`; returns immediately. Call it after commit.
    pub fn poke(&self, channel: Channel) {
        if let Some(pokes) = &self.inner {
            pokes[channel as usize].notify_one();
        }
    }
}

impl Channel {
    fn wake_up(self) -> WakeUp {
        match self {
            Channel::Events => WakeUp::Events,
            Channel::Tasks => WakeUp::Tasks,
            Channel::Changes => WakeUp::Changes,
        }
    }
}

/// The wake-up port over LISTEN: each subscriber gets its own LISTEN connection (outside the
/// given pool, on its options), which lives as long as its stream.
#[derive(Clone)]
pub struct PgWakeUps {
    pool: PgPool,
}

impl PgWakeUps {
    pub fn new(pool: PgPool) -> Self {
        PgWakeUps { pool }
    }
}

/// Hints queued for one subscriber; more are dropped (the subscriber has plenty to look at
/// already, and polls anyway).
const QUEUED_HINTS: usize = 64;

impl WakeUps for PgWakeUps {
    fn subscribe(&self) -> Box<dyn WakeStream> {
        let (tx, rx) = mpsc::channel(QUEUED_HINTS);
        let connected = Arc::new(AtomicBool::new(false));
        // A pool of one connection of its own, on the same options: LISTEN never takes (nor,
        // when it reconnects, steals) a connection of the pool it was given.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        tokio::spawn(Listener::run(own, tx, connected.clone()));
        Box::new(Hints { rx, connected })
    }
}

struct Hints {
    rx: mpsc::Receiver<WakeUp>,
    /// Whether the LISTEN connection is up (its listener sets it).
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl WakeStream for Hints {
    async fn next(&mut self) -> Option<WakeUp> {
        self.rx.recv().await
    }

    fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// The LISTEN side of one subscriber.
struct Listener;

impl Listener {
    /// Runs the LISTEN loop until the subscriber drops its stream: reconnects with backoff,
    /// re-LISTENs, and sends [`WakeUp::All`] after any gap (notifications sent meanwhile are
    /// lost, so the subscriber must look). `connected` says whether the LISTEN connection is
    /// up.
    async fn run(pool: PgPool, hints: mpsc::Sender<WakeUp>, connected: Arc<AtomicBool>) {
        let mut backoff = Duration::from_millis(100);
        while !hints.is_closed() {
            let mut listener = match Self::connect(&pool).await {
                Ok(l) => {
                    backoff = Duration::from_millis(100);
                    connected.store(true, Ordering::Relaxed);
                    l
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "LISTEN connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = hints.closed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            tracing::debug!("listening on {:?}", CHANNELS.map(Channel::name));
            let _ = hints.try_send(WakeUp::All);
            loop {
                tokio::select! {
                    _ = hints.closed() => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(n)) => {
                            let hint = Channel::named(n.channel()).map_or(WakeUp::All, Channel::wake_up);
                            let _ = hints.try_send(hint);
                        }
                        // Connection lost: reconnect here (not inside `try_recv`), so that
                        // `connected` stays false until LISTEN is back.
                        Ok(None) => {
                            tracing::warn!("LISTEN connection lost; reconnecting");
                            connected.store(false, Ordering::Relaxed);
                            let _ = hints.try_send(WakeUp::All);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN failed; reconnecting");
                            connected.store(false, Ordering::Relaxed);
                            let _ = hints.try_send(WakeUp::All);
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all(CHANNELS.map(Channel::name)).await?;
        Ok(listener)
    }
}
