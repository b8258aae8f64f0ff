//! Maintenance on one leader among all daemons: the leader lock (the `LeaderLock` port; for
//! PostgreSQL an advisory lock held on a dedicated connection, so when the leader dies
//! another daemon takes over) and, while it is held, the rescue of expired leases and the
//! daily jobs (each in a task of its own, so a long archive does not hold up the rescue).

use super::daemon::DaemonConfig;
use super::daily::Daily;
use campus_core::Timestamp;
use campus_ports::{LeaderLock, Leadership, TaskQueue};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(super) async fn maintenance_loop(
    lock: Arc<dyn LeaderLock>,
    queue: Arc<dyn TaskQueue>,
    daily: Vec<Daily>,
    config: Arc<DaemonConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leadership: Option<Box<dyn Leadership>> = None;
    // Per daily job: when this daemon started looking (a job never run is first due at its
    // next scheduled time after that), and its run in progress.
    let mut jobs: Vec<(Daily, Timestamp, Option<JoinHandle<()>>)> = daily
        .into_iter()
        .map(|d| {
            let since = d.schedule.clock.now();
            (d, since, None)
        })
        .collect();
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
            for (daily, since, running) in &mut jobs {
                if running.as_ref().is_none_or(JoinHandle::is_finished) {
                    *running = start_if_due(daily, *since).await;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.maintenance_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    // A daily run in progress stops between two of its atomic steps: it is recorded only
    // when it went to its end, so the next leader runs it again.
    for (_, _, running) in jobs {
        if let Some(run) = running {
            run.abort();
        }
    }
    if let Some(held) = leadership {
        held.release().await;
    }
}

/// Starts `daily`'s run when one is due (see `Schedule::due`).
async fn start_if_due(daily: &Daily, since: Timestamp) -> Option<JoinHandle<()>> {
    let last = match daily.job.last_due().await {
        Ok(last) => last,
        Err(e) => {
            tracing::warn!(job = daily.job.name(), error = %e, "cannot read the last daily run");
            return None;
        }
    };
    let due = daily.schedule.due(last, since)?;
    let job = daily.job.clone();
    tracing::info!(job = job.name(), due = due.0, "daily run started");
    Some(tokio::spawn(async move {
        if let Err(e) = job.run(due).await {
            tracing::warn!(job = job.name(), error = %e, "daily run failed; the next leader check retries it");
        }
    }))
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
