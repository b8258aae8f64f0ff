//! Maintenance on one leader among all daemons: the leader lock (the `LeaderLock` port; for
//! PostgreSQL an advisory lock held on a dedicated connection, so when the leader dies
//! another daemon takes over) and, while it is held, the rescue of expired leases.

use super::daemon::DaemonConfig;
use campus_ports::{LeaderLock, Leadership, TaskQueue};
use std::sync::Arc;
use tokio::sync::watch;

pub(super) async fn maintenance_loop(
    lock: Arc<dyn LeaderLock>,
    queue: Arc<dyn TaskQueue>,
    config: Arc<DaemonConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leadership: Option<Box<dyn Leadership>> = None;
    while !*shutdown.borrow() {
        leadership = match leadership.take() {
            Some(mut held) => {
                if held.still_held().await {
                    Some(held)
                } else {
                    tracing::warn!("lost the maintenance leadership");
                    None
                }
            }
            None => try_lead(lock.as_ref()).await,
        };
        if leadership.is_some() {
            rescue_expired(queue.as_ref(), &config).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.maintenance_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    if let Some(held) = leadership {
        held.release().await;
    }
}

async fn try_lead(lock: &dyn LeaderLock) -> Option<Box<dyn Leadership>> {
    match lock.try_acquire().await {
        Ok(Some(held)) => {
            tracing::info!("this daemon is the maintenance leader");
            Some(held)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "could not try the maintenance leadership");
            None
        }
    }
}

/// Returns every task whose lease expired to the queue, in batches.
async fn rescue_expired(queue: &dyn TaskQueue, config: &DaemonConfig) {
    loop {
        match queue.rescue_expired(&config.retry, 1000).await {
            Ok(0) => break,
            Ok(n) => tracing::warn!(
                rescued = n,
                "returned tasks with expired leases to the queue"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "rescuing expired leases failed");
                break;
            }
        }
    }
}
