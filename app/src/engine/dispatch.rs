//! The dispatch loop: claims due events and fans each out to its tasks through the event
//! store, round after round, waking on hints and polling otherwise. While the worker loop has
//! caught up, a round also claims the tasks it inserts for this daemon and hands them to the
//! worker loop (they need no claim of their own).

use super::daemon::DaemonConfig;
use super::in_flight::Slots;
use super::registry::Registry;
use super::workers::{claim_types, one_slot_each, Handed, CLAIM_BATCH};
use campus_ports::{ClaimOnInsert, ClaimedTask, EventStore};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit};

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

/// The way from the dispatcher to the worker loop: the slots the dispatcher reserves for the
/// tasks it claims, and the channel it hands them over.
pub(super) struct Handoff {
    pub slots: Slots,
    pub workers: mpsc::UnboundedSender<Handed>,
}

impl Handoff {
    /// What the next round may claim, with the slots reserved for it: only while the worker
    /// loop has caught up (nothing else is due that it may run, so taking the new tasks first
    /// jumps no queue), up to the free slots.
    fn offer(
        &self,
        registry: &Registry,
        config: &DaemonConfig,
    ) -> Option<(ClaimOnInsert, OwnedSemaphorePermit)> {
        if !self.slots.caught_up.load(Ordering::Relaxed) {
            return None;
        }
        let types = claim_types(registry, &self.slots, config.max_running_per_institution);
        if types.is_empty() {
            return None;
        }
        // Reserved last: slots released other than through `settle` would not wake a worker
        // loop waiting for one.
        let free = self.slots.permits.available_permits().min(CLAIM_BATCH);
        let limit = u32::try_from(free).ok().filter(|n| *n > 0)?;
        let permit = self
            .slots
            .permits
            .clone()
            .try_acquire_many_owned(limit)
            .ok()?;
        let claim = ClaimOnInsert {
            worker: config.worker_id.clone(),
            types,
            limit,
            lease: config.lease,
        };
        Some((claim, permit))
    }

    /// Hands the tasks a round claimed to the worker loop, one reserved slot each, and frees
    /// the slots left over. A task the worker loop can no longer take (it stopped) comes back
    /// through its lease's expiry.
    fn settle(&self, claimed: Vec<ClaimedTask>, mut reserved: OwnedSemaphorePermit) {
        if !claimed.is_empty() {
            let handed = one_slot_each(claimed, &mut reserved);
            self.slots
                .claimed
                .fetch_add(handed.len() as u64, Ordering::Relaxed);
            let _ = self.workers.send(handed);
        }
        // The worker loop may be waiting for a slot because this round held them all.
        let all_held = self.slots.permits.available_permits() == 0;
        let left = reserved.num_permits();
        drop(reserved);
        if all_held && left > 0 {
            self.slots.freed.notify_one();
        }
    }
}

pub(super) async fn dispatch_loop(
    events: Arc<dyn EventStore>,
    registry: Arc<Registry>,
    config: Arc<DaemonConfig>,
    wake: Arc<Notify>,
    handoff: Handoff,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        let offer = handoff.offer(&registry, &config);
        let round = match &offer {
            Some((claim, _)) => {
                events
                    .dispatch_and_claim(
                        config.dispatch_batch,
                        registry.clone(),
                        &config.retry,
                        claim,
                    )
                    .await
            }
            None => events
                .dispatch_pending(config.dispatch_batch, registry.clone(), &config.retry)
                .await
                .map(|report| (report, Vec::new())),
        };
        let (round, claimed) = match round {
            Ok((report, claimed)) => (Ok(report), claimed),
            Err(e) => (Err(e), Vec::new()),
        };
        if let Some((_, reserved)) = offer {
            handoff.settle(claimed, reserved);
        }
        match round {
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

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::TaskId;

    fn claimed(n: u128) -> ClaimedTask {
        ClaimedTask {
            id: TaskId(n),
            task_type: "noop".into(),
            payload: "{}".into(),
            institution_id: None,
            event_id: None,
            correlation_id: None,
            lineage_id: TaskId(n),
            attempt: 1,
            max_attempts: 1,
            created_at: campus_core::Timestamp(0),
        }
    }

    /// Each task a round claimed goes to the worker loop with one reserved slot; the slots it
    /// did not use are freed, and a worker loop waiting for a slot (the round held them all)
    /// hears of it.
    #[tokio::test]
    async fn a_round_hands_over_its_tasks_and_frees_the_slots_it_did_not_use() {
        let slots = Slots::new(3);
        let (workers, mut handed) = mpsc::unbounded_channel();
        let handoff = Handoff {
            slots: slots.clone(),
            workers,
        };
        let reserved = slots.permits.clone().try_acquire_many_owned(3).unwrap();
        let freed = slots.freed.clone();
        let woken = tokio::spawn(async move { freed.notified().await });
        handoff.settle(vec![claimed(1)], reserved);
        let batch = handed.try_recv().unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].1.num_permits(), 1);
        assert_eq!(slots.permits.available_permits(), 2);
        assert_eq!(slots.claimed.load(Ordering::Relaxed), 1);
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("a worker loop waiting for a slot is woken")
            .unwrap();
    }
}
