//! Live updates of the admin screen: one LISTEN connection per API process (opened when the
//! first page subscribes) turns the engine's notifications into a version counter, and each
//! open page gets a server-sent event `changed` (at most one per [`MIN_GAP`]) and re-reads
//! its own view (the hints come through the `WakeUps` port). NOTIFY is a hint here too: the listener re-LISTENs after a lost connection
//! and then tells every page to refresh, and a page refreshes when its own stream reconnects.

use crate::engine::Wakers;
use campus_ports::WakeUps;
use futures::Stream;
use poem::web::sse::{Event, SSE};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// Shortest gap between two `changed` events sent to one page.
const MIN_GAP: Duration = Duration::from_millis(500);

/// Turns engine notifications into a version number pages can wait on.
pub struct LiveHub {
    wake_ups: Arc<dyn WakeUps>,
    started: OnceLock<(watch::Receiver<u64>, watch::Sender<bool>)>,
}

impl LiveHub {
    pub fn new(wake_ups: Arc<dyn WakeUps>) -> Self {
        LiveHub {
            wake_ups,
            started: OnceLock::new(),
        }
    }

    /// The version counter; starts the listener on first use (needs a tokio runtime).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let (version, _) = self.started.get_or_init(|| {
            let (version_tx, version_rx) = watch::channel(0u64);
            // Dropped with the hub, which stops the listener.
            let (stop_tx, stop_rx) = watch::channel(false);
            let wakers = Wakers::default();
            tokio::spawn(
                wakers
                    .clone()
                    .run(self.wake_ups.clone(), None, stop_rx.clone()),
            );
            let mut stop = stop_rx;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = wakers.events.notified() => {}
                        _ = wakers.tasks.notified() => {}
                        _ = wakers.changes.notified() => {}
                        // Dropping the version sender ends every page's stream.
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    version_tx.send_modify(|v| *v += 1);
                }
            });
            (version_rx, stop_tx)
        });
        version.clone()
    }

    /// Ends every page's stream and the listener, so a graceful shutdown need not wait for
    /// open pages.
    pub fn stop(&self) {
        if let Some((_, stop)) = self.started.get() {
            let _ = stop.send(true);
        }
    }

    /// The current version: pages carry the one they were rendered at.
    pub fn version(&self) -> u64 {
        *self.subscribe().borrow()
    }

    /// The event stream of one page rendered at version `since`: a `changed` event at once
    /// when something changed between its rendering and its subscription (else that change
    /// would never reach it), then after each change.
    pub fn stream(&self, since: Option<u64>) -> SSE {
        SSE::new(self.page_changes(since)).keep_alive(Duration::from_secs(15))
    }

    fn page_changes(&self, since: Option<u64>) -> impl Stream<Item = Event> + Send + 'static {
        let mut version = self.subscribe();
        let now = *version.borrow_and_update();
        if since.is_some_and(|s| s != now) {
            version.mark_changed();
        }
        changes(version)
    }
}

fn changes(version: watch::Receiver<u64>) -> impl Stream<Item = Event> + Send + 'static {
    futures::stream::unfold((version, false), |(mut version, sent)| async move {
        if sent {
            // Changes during the gap are coalesced into the next event.
            tokio::time::sleep(MIN_GAP).await;
        }
        version.changed().await.ok()?;
        let v = *version.borrow_and_update();
        Some((
            Event::message(v.to_string()).event_type("changed"),
            (version, true),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn stopping_the_hub_ends_every_page_stream() {
        // The listener may or may not reach a server; the streams end either way.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy(&campus_adapters::pg::testing::server_url())
            .unwrap();
        let hub = LiveHub::new(Arc::new(campus_adapters::pg::PgWakeUps::new(pool)));
        let mut first = Box::pin(changes(hub.subscribe()));
        let mut second = Box::pin(changes(hub.subscribe()));
        hub.stop();
        // A wake-up from the listener connecting may still come through first.
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while first.next().await.is_some() {}
            while second.next().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "the streams end once the hub stops");
    }

    #[tokio::test]
    async fn a_page_hears_at_once_of_a_change_since_it_was_rendered() {
        let store = campus_adapters::memory::MemoryStore::with_system_clock();
        let hub = LiveHub::new(Arc::new(store));
        let rendered = hub.version();
        // The listener's first hint ("look at everything") is a change.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while hub.version() == rendered {
            assert!(tokio::time::Instant::now() < deadline, "no change came");
            tokio::task::yield_now().await;
        }
        let mut page = Box::pin(hub.page_changes(Some(rendered)));
        let first = tokio::time::timeout(Duration::from_secs(5), page.next()).await;
        assert!(
            matches!(first, Ok(Some(_))),
            "a change before subscribing is sent"
        );
        hub.stop();
    }
}
