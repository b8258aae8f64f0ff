//! The dispatch loop: claims due events and fans each out to its tasks through the event
//! store, round after round, waking on hints and polling otherwise.

use super::daemon::DaemonConfig;
use super::registry::Registry;
use campus_ports::EventStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How long a busy dispatcher lets events gather before its next round.
const GATHER: Duration = Duration::from_millis(2);

/// Waits for a wake-up (`wake`, or `also` when given), the poll interval or shutdown.
/// Returns false on shutdown.
pub(super) async fn idle(
    wake: &Notify,
    also: Option<&Notify>,
    poll: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let also = async {
        match also {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = wake.notified() => true,
        _ = also => true,
        _ = tokio::time::sleep(poll) => true,
        _ = shutdown.changed() => false,
    }
}

/// The wait after `failures` failed rounds in a row: 200 ms doubling, at most 5 s.
pub(super) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5))
}

pub(super) async fn dispatch_loop(
    events: Arc<dyn EventStore>,
    registry: Arc<Registry>,
    config: Arc<DaemonConfig>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        match events
            .dispatch_pending(config.dispatch_batch, registry.clone(), &config.retry)
            .await
        {
            Ok(report) => {
                failures = 0;
                if report.events > 0 {
                    tracing::debug!(
                        events = report.events,
                        tasks = report.tasks,
                        failed = report.failed,
                        "dispatched"
                    );
                }
                if report.events as u32 >= config.dispatch_batch {
                    continue; // more may be waiting
                }
                if report.events > 0 {
                    // Busy: let a few milliseconds of events gather into the next round rather
                    // than running one tiny round per NOTIFY. The round was not full, so it
                    // took every due event no other dispatcher holds; a later one NOTIFYs after its
                    // commit, which leaves a wake-up for `idle` below (no empty round to
                    // find that out; polling still covers a lost NOTIFY).
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "dispatch round failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff(failures)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        }
        if !idle(&wake, None, config.poll_interval, &mut shutdown).await {
            return;
        }
    }
}
