//! The worker loop: claims due tasks of the types this daemon runs (within their concurrency
//! limits and the per-institution cap, never more than the slots it reserved), starts them and
//! the tasks the dispatcher claimed for it, runs each with its type's timeout (a panic or a
//! timeout is a failed attempt, not a crash), hands outcomes to the completer, and on
//! shutdown lets running tasks finish, then records the interrupted ones as failed.

use super::daemon::DaemonConfig;
use super::dispatch::{backoff, idle};
use super::in_flight::{Attempt, Finished, Slots};
use super::registry::{Registry, TaskError};
use crate::metrics::TaskMetrics;
use campus_ports::{ClaimTypes, ClaimedTask, Completion, TaskOutcome, TaskQueue};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tracing::Instrument;

/// Most tasks one claim takes. With many slots free, several claims of this size follow one
/// another while the completer writes, instead of one large claim that leaves PostgreSQL's
/// second core idle. Each claim pays a fixed cost at the head of `tasks_claim` (the entries of
/// the tasks claimed before it), so fewer, larger claims drain faster: on 2 cores, 512 drained
/// 15 % faster than 256 and as fast as 1 024 (docs/PERFORMANCE.md; with the single-scan claim
/// of before #23, 256 had been best).
pub(super) const CLAIM_BATCH: usize = 512;

/// Tasks the dispatcher claimed as it inserted them, each with the slot it reserved.
pub(super) type Handed = Vec<(ClaimedTask, OwnedSemaphorePermit)>;

/// The worker loop's dependencies.
pub(super) struct Workers {
    pub queue: Arc<dyn TaskQueue>,
    pub registry: Arc<Registry>,
    pub config: Arc<DaemonConfig>,
    pub wake: Arc<Notify>,
    pub slots: Slots,
    pub done: mpsc::UnboundedSender<Finished>,
    /// Tasks the dispatcher claimed for this daemon (`dispatch::Handoff`).
    pub handed: mpsc::UnboundedReceiver<Handed>,
    /// Turns true when the loop has stopped claiming (before the running tasks finish).
    pub stopped_claiming: watch::Sender<bool>,
}

impl Workers {
    pub(super) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Workers {
            queue,
            registry,
            config,
            wake,
            slots,
            done,
            mut handed,
            stopped_claiming,
        } = self;
        let mut running = JoinSet::new();
        let heartbeat = tokio::spawn(super::heartbeat::heartbeat_loop(
            queue.clone(),
            config.clone(),
            slots.clone(),
        ));
        let mut failures = 0u32;
        let start_handed = |running: &mut JoinSet<()>, batch: Handed| {
            for (task, slot) in batch {
                launch(running, &registry, &slots, &done, task, slot);
            }
        };
        'claiming: while !*shutdown.borrow() {
            while running.try_join_next().is_some() {}
            while let Ok(batch) = handed.try_recv() {
                start_handed(&mut running, batch);
            }
            let free = slots.permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = slots.freed.notified() => continue,
                    Some(batch) = handed.recv() => {
                        start_handed(&mut running, batch);
                        continue;
                    }
                    _ = shutdown.changed() => break,
                }
            }
            let want = u32::try_from(free.min(CLAIM_BATCH)).unwrap_or(u32::MAX);
            // The slots are taken before the claim: the dispatcher may reserve free ones for
            // the tasks it claims meanwhile.
            let Ok(mut reserved) = slots.permits.clone().try_acquire_many_owned(want) else {
                continue;
            };
            let types = claim_types(&registry, &slots, config.max_running_per_institution);
            let claimed = match queue
                .claim(&config.worker_id, &types, want, config.lease)
                .await
            {
                Ok(c) => {
                    failures = 0;
                    c
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "claiming tasks failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(failures)) => {}
                        _ = shutdown.changed() => break,
                    }
                    continue;
                }
            };
            let got = claimed.len();
            slots.claimed.fetch_add(got as u64, Ordering::Relaxed);
            // A claim gives each institution its share: when it took tasks of several, one of
            // them may have more due than its share, so a short claim is followed by another
            // at once. A short claim of one institution (or none) took all that was due.
            let shared = claimed
                .iter()
                .any(|t| t.institution_id != claimed[0].institution_id);
            start_handed(&mut running, one_slot_each(claimed, &mut reserved));
            drop(reserved);
            let caught_up = got < want as usize && !shared;
            slots.caught_up.store(caught_up, Ordering::Relaxed);
            if caught_up {
                // A type at its concurrency limit or an institution at its cap may have more
                // due: a freed slot is worth a look then, not only a wake-up or the poll.
                let capped = types.institutions.iter().any(|(_, room)| *room == 0);
                let freed = (capped || registry.throttled(|t| slots.in_flight.holding(t)))
                    .then_some(&*slots.freed);
                // Tasks the dispatcher hands over meanwhile start at once; the loop stays idle
                // (they were all that was due) until a wake-up or its poll, which they do not
                // put off (a retry coming due has no other wake-up).
                let poll = Instant::now() + config.poll_interval;
                loop {
                    let left = poll.saturating_duration_since(Instant::now());
                    tokio::select! {
                        Some(batch) = handed.recv() => start_handed(&mut running, batch),
                        more = idle(&wake, freed, left, &mut shutdown) => {
                            if !more {
                                break 'claiming;
                            }
                            break;
                        }
                    }
                }
            }
        }
        // The dispatcher stops at the same signal, perhaps after a round that claimed tasks:
        // they run with the others. Its end of the channel closes when it has stopped.
        let dispatcher_stopped = async {
            while let Some(batch) = handed.recv().await {
                start_handed(&mut running, batch);
            }
        };
        if tokio::time::timeout(config.shutdown_timeout, dispatcher_stopped)
            .await
            .is_err()
        {
            tracing::warn!("the dispatcher did not stop in time; tasks it claims now wait for their lease to expire");
        }
        stopped_claiming.send_replace(true);
        drain(running, &config, &slots, &done).await;
        heartbeat.abort();
    }
}

/// What the next claim may take: the registry's types within their limits, and with a
/// per-institution cap, what is left of it for each institution this daemon runs tasks of.
pub(super) fn claim_types(registry: &Registry, slots: &Slots, cap: Option<u32>) -> ClaimTypes {
    let mut types = registry.claim_types(|t| slots.in_flight.holding(t));
    if let Some(cap) = cap {
        types.institution_cap = Some(cap);
        types.institutions = slots
            .in_flight
            .by_institution()
            .into_iter()
            .map(|(i, n)| (i, cap.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX))))
            .collect();
    }
    types
}

/// Pairs each claimed task with one of the `reserved` slots (never more tasks are claimed
/// than slots reserved for them).
pub(super) fn one_slot_each(
    claimed: Vec<ClaimedTask>,
    reserved: &mut OwnedSemaphorePermit,
) -> Handed {
    let mut handed = Vec::with_capacity(claimed.len());
    for task in claimed {
        match reserved.split(1) {
            Some(slot) => handed.push((task, slot)),
            None => tracing::error!(task_id = task.id.0, "no reserved slot for a claimed task"),
        }
    }
    handed
}

/// Runs one claimed task in the slot `permit` holds for it.
fn launch(
    running: &mut JoinSet<()>,
    registry: &Arc<Registry>,
    slots: &Slots,
    done: &mpsc::UnboundedSender<Finished>,
    task: ClaimedTask,
    permit: OwnedSemaphorePermit,
) {
    let (registry, done, in_flight) = (registry.clone(), done.clone(), slots.in_flight.clone());
    let id = task.id;
    in_flight.insert(&task);
    let handle = running.spawn({
        let in_flight = in_flight.clone();
        async move {
            let completion = execute(&registry, task).await;
            in_flight.mark_finished(id);
            // The slot stays taken until the outcome is written (back-pressure: claims never
            // outrun the completer), see `completer`.
            let _ = done.send(Finished {
                completion,
                permit: Some(permit),
            });
        }
    });
    in_flight.set_abort(id, handle);
}

/// Graceful stop: no new claims; lets the running tasks finish within the timeout (their
/// leases are still extended meanwhile), then records what is still in flight as failed.
async fn drain(
    mut running: JoinSet<()>,
    config: &DaemonConfig,
    slots: &Slots,
    done: &mpsc::UnboundedSender<Finished>,
) {
    if running.is_empty() {
        return;
    }
    tracing::info!(
        running = running.len(),
        "waiting for running tasks before stopping"
    );
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_ok() {
        return;
    }
    running.abort_all();
    while running.join_next().await.is_some() {}
    // What is still in flight was interrupted: record a failed attempt now rather than
    // leaving it to the lease rescuer.
    let interrupted = slots.in_flight.drain_unfinished();
    tracing::warn!(
        interrupted = interrupted.len(),
        "shutdown timeout: interrupting running tasks"
    );
    for (
        id,
        Attempt {
            attempt,
            max_attempts,
            started,
            ..
        },
    ) in interrupted
    {
        let completion = Completion {
            id,
            attempt,
            max_attempts,
            outcome: TaskOutcome::Failed {
                message: "the daemon stopped before the task finished".into(),
                permanent: false,
                retry_in: None,
            },
            duration: started.elapsed(),
        };
        let _ = done.send(Finished {
            completion,
            permit: None,
        });
    }
}

/// Runs one claimed task within its type's timeout and turns its result (or panic) into a
/// completion.
async fn execute(registry: &Registry, task: ClaimedTask) -> Completion {
    let started = Instant::now();
    let metrics = TaskMetrics::of(&task.task_type);
    metrics.started.increment(1);
    let waited_ms = chrono::Utc::now().timestamp_millis() - task.created_at.0;
    metrics.start_delay.record(waited_ms.max(0) as f64 / 1000.0);
    let span = tracing::info_span!(
        "task",
        task_id = %uuid::Uuid::from_u128(task.id.0),
        task_type = %task.task_type,
        attempt = task.attempt,
        correlation_id = task.correlation_id.as_deref().unwrap_or(""),
    );
    let result = match registry.task_handler(&task.task_type) {
        None => Err(TaskError::permanent(format!(
            "no handler is registered for task type {}",
            task.task_type
        ))),
        Some(handler) => {
            let timeout = registry.options(&task.task_type).timeout;
            let run = AssertUnwindSafe(handler.run(&task))
                .catch_unwind()
                .instrument(span.clone());
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(TaskError::transient(format!(
                    "handler panicked: {}",
                    panic_message(panic.as_ref())
                ))),
                // Dropping the handler's future stopped it; the slot comes back with the
                // outcome.
                Err(_) => Err(TaskError::transient(format!(
                    "timed out after {} ms (the limit of task type {})",
                    timeout.as_millis(),
                    task.task_type
                ))),
            }
        }
    };
    metrics.duration.record(started.elapsed().as_secs_f64());
    match &result {
        Ok(()) => metrics.succeeded.increment(1),
        Err(e) if e.permanent || task.attempt >= task.max_attempts => metrics.dead.increment(1),
        Err(_) => {
            metrics.retrying.increment(1);
            metrics.retries.increment(1);
        }
    }
    let outcome = match result {
        Ok(()) => {
            span.in_scope(|| tracing::debug!(elapsed = ?started.elapsed(), "task succeeded"));
            TaskOutcome::Succeeded
        }
        Err(e) => {
            span.in_scope(
                || tracing::warn!(error = %e.message, permanent = e.permanent, "task failed"),
            );
            TaskOutcome::Failed {
                message: e.message,
                permanent: e.permanent,
                retry_in: e.retry_in,
            }
        }
    };
    Completion {
        id: task.id,
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        outcome,
        duration: started.elapsed(),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
