//! The completer: writes outcomes in batches (fenced by worker and attempt in the task
//! queue), then frees their slots. An outcome never written is recovered by the lease
//! rescuer.

use super::daemon::DaemonConfig;
use super::in_flight::{Finished, Slots};
use campus_ports::{Completion, TaskQueue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Most outcomes one completion statement writes.
const COMPLETION_BATCH: usize = 256;
/// Completion statements in flight at once.
const COMPLETION_WRITERS: usize = 2;

/// Writes outcomes in batches, then frees their slots; retries a write until it succeeds.
/// Up to `COMPLETION_WRITERS` batches are written at once, so the store works on completions
/// while the worker loop claims with the slots the previous batch freed.
pub(super) async fn complete_loop(
    queue: Arc<dyn TaskQueue>,
    config: Arc<DaemonConfig>,
    slots: Slots,
    mut done: mpsc::UnboundedReceiver<Finished>,
) {
    let writers = Arc::new(Semaphore::new(COMPLETION_WRITERS));
    let mut writes = JoinSet::new();
    loop {
        let Ok(writer) = writers.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(COMPLETION_BATCH);
        if done.recv_many(&mut batch, COMPLETION_BATCH).await == 0 {
            break;
        }
        while writes.try_join_next().is_some() {}
        let (queue, config, slots) = (queue.clone(), config.clone(), slots.clone());
        writes.spawn(async move {
            write_outcomes(queue.as_ref(), &config, batch, &slots).await;
            drop(writer);
        });
    }
    while writes.join_next().await.is_some() {}
}

/// Writes one batch of outcomes (retrying), then frees its slots.
async fn write_outcomes(
    queue: &dyn TaskQueue,
    config: &DaemonConfig,
    batch: Vec<Finished>,
    slots: &Slots,
) {
    let completions: Vec<Completion> = batch.iter().map(|f| f.completion.clone()).collect();
    let mut failures = 0u32;
    loop {
        match queue
            .complete(&config.worker_id, &completions, &config.retry)
            .await
        {
            Ok(accepted) => {
                if accepted < completions.len() {
                    metrics::counter!(crate::metrics::LEASES_LOST)
                        .increment((completions.len() - accepted) as u64);
                    tracing::warn!(
                        rejected = completions.len() - accepted,
                        "stale completions rejected (lease lost)"
                    );
                }
                break;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures > 20 {
                    tracing::error!(error = %e, lost = completions.len(), "giving up writing outcomes; leases will expire");
                    break;
                }
                tracing::warn!(error = %e, "writing task outcomes failed; retrying");
                tokio::time::sleep(Duration::from_millis(100u64 << failures.min(6))).await;
            }
        }
    }
    for f in batch {
        slots.in_flight.remove(f.completion.id);
        drop(f.permit);
    }
    slots.freed.notify_one();
}
