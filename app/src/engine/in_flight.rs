//! The attempts one daemon holds and its task slots: at most `concurrency` attempts at once,
//! counting those whose outcome is not written yet, per task type for the concurrency
//! limits and per institution for the per-institution cap. The heartbeat keeps their leases; a lost lease stops its handler.

use campus_core::ids::{InstitutionId, TaskId};
use campus_ports::{ClaimedTask, Completion};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Notify, Semaphore};

/// One attempt this daemon holds.
#[derive(Clone)]
pub(super) struct Attempt {
    pub task_type: Arc<str>,
    pub institution_id: Option<InstitutionId>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub started: Instant,
    /// The handler returned; the outcome waits for the completer.
    pub finished: bool,
    /// Stops the handler (when its lease is lost).
    pub abort: Option<tokio::task::AbortHandle>,
}

/// The attempts this daemon holds, by id: running, or finished with the outcome not yet
/// written. Their leases are kept alive until the outcome is written.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<std::sync::Mutex<HashMap<TaskId, Attempt>>>);

impl InFlight {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, Attempt>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    pub(super) fn insert(&self, task: &ClaimedTask) {
        let attempt = Attempt {
            task_type: task.task_type.as_str().into(),
            institution_id: task.institution_id,
            attempt: task.attempt,
            max_attempts: task.max_attempts,
            started: Instant::now(),
            finished: false,
            abort: None,
        };
        self.lock().insert(task.id, attempt);
    }
    pub(super) fn set_abort(&self, id: TaskId, handle: tokio::task::AbortHandle) {
        if let Some(a) = self.lock().get_mut(&id) {
            a.abort = Some(handle);
        }
    }
    pub(super) fn mark_finished(&self, id: TaskId) {
        if let Some(a) = self.lock().get_mut(&id) {
            a.finished = true;
        }
    }
    pub(super) fn remove(&self, id: TaskId) {
        self.lock().remove(&id);
    }
    /// How many attempts of `task_type` this daemon holds (against its concurrency limit).
    pub(super) fn holding(&self, task_type: &str) -> usize {
        self.lock()
            .values()
            .filter(|a| &*a.task_type == task_type)
            .count()
    }
    /// How many attempts this daemon holds per institution (against the per-institution
    /// cap; `None`: tasks of no institution).
    pub(super) fn by_institution(&self) -> HashMap<Option<InstitutionId>, usize> {
        let mut counts = HashMap::new();
        for a in self.lock().values() {
            *counts.entry(a.institution_id).or_default() += 1;
        }
        counts
    }
    /// Every attempt held, as (task, attempt number).
    pub(super) fn snapshot(&self) -> Vec<(TaskId, u32)> {
        self.lock().iter().map(|(id, a)| (*id, a.attempt)).collect()
    }
    /// Forgets and stops the attempts among `asked` that have really lost their lease: the
    /// heartbeat did not hold them and their handler is still running here (the leader gave
    /// the task to someone else, whose attempt now counts; this one's outcome would be
    /// refused, and its effects would double those of the new holder). An attempt whose
    /// handler returned may have had its outcome written (clearing its lock) while the
    /// heartbeat ran, so it does not count; if its lease was really lost, the completer says
    /// so when the write is rejected. Returns how many were stopped.
    pub(super) fn stop_lost(&self, asked: &[(TaskId, u32)], held: &[TaskId]) -> usize {
        let held: std::collections::HashSet<&TaskId> = held.iter().collect();
        let mut map = self.lock();
        let mut stopped = 0;
        for (id, attempt) in asked {
            let lost = !held.contains(id)
                && map
                    .get(id)
                    .is_some_and(|a| a.attempt == *attempt && !a.finished);
            if lost {
                if let Some(handle) = map.remove(id).and_then(|a| a.abort) {
                    handle.abort();
                }
                stopped += 1;
            }
        }
        stopped
    }
    /// Removes and returns the attempts whose handler never returned.
    pub(super) fn drain_unfinished(&self) -> Vec<(TaskId, Attempt)> {
        let mut map = self.lock();
        let unfinished: Vec<_> = map
            .iter()
            .filter(|(_, a)| !a.finished)
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        for (id, _) in &unfinished {
            map.remove(id);
        }
        unfinished
    }
}

/// The daemon's task slots: at most `concurrency` attempts are held at once, counting those
/// whose outcome is not written yet.
#[derive(Clone)]
pub(super) struct Slots {
    pub permits: Arc<Semaphore>,
    pub freed: Arc<Notify>,
    pub in_flight: InFlight,
    /// Whether the last claim was short (no more due work than it took, or a type or an
    /// institution at its limit): the daemon has caught up with what it may run, and
    /// background work may use the room.
    pub caught_up: Arc<AtomicBool>,
    /// Tasks claimed since the daemon started (background work tells a quiet daemon by it).
    pub claimed: Arc<AtomicU64>,
}

impl Slots {
    pub(super) fn new(concurrency: usize) -> Self {
        Slots {
            permits: Arc::new(Semaphore::new(concurrency)),
            freed: Arc::new(Notify::new()),
            in_flight: InFlight::default(),
            caught_up: Arc::default(),
            claimed: Arc::default(),
        }
    }
}

/// A finished attempt on its way to the completer, holding its slot until written.
pub(super) struct Finished {
    pub completion: Completion,
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::task::JoinSet;

    fn hold(in_flight: &InFlight, id: u128, attempt: u32) -> (TaskId, u32) {
        let held = Attempt {
            task_type: "t".into(),
            institution_id: None,
            attempt,
            max_attempts: 5,
            started: Instant::now(),
            finished: false,
            abort: None,
        };
        in_flight.lock().insert(TaskId(id), held);
        (TaskId(id), attempt)
    }

    #[test]
    fn attempts_are_counted_per_type() {
        let in_flight = InFlight::default();
        hold(&in_flight, 1, 1);
        hold(&in_flight, 2, 1);
        assert_eq!(in_flight.holding("t"), 2);
        assert_eq!(in_flight.holding("other"), 0);
        in_flight.remove(TaskId(1));
        assert_eq!(in_flight.holding("t"), 1);
    }

    #[test]
    fn only_running_attempts_the_heartbeat_missed_count_as_lost() {
        let in_flight = InFlight::default();
        let kept = hold(&in_flight, 1, 1);
        let running = hold(&in_flight, 2, 1);
        let finished = hold(&in_flight, 3, 1);
        let written = hold(&in_flight, 4, 1);
        let retried = hold(&in_flight, 5, 1);
        let asked = in_flight.snapshot();
        assert_eq!(asked.len(), 5);

        // While the heartbeat ran: 3 finished and its outcome was written (unlocking it, but
        // not yet forgotten here), 4 was written and forgotten, 5 was written as a retry and
        // claimed again as attempt 2.
        in_flight.mark_finished(finished.0);
        in_flight.remove(written.0);
        in_flight.remove(retried.0);
        hold(&in_flight, 5, 2);
        let held = [kept.0];

        assert_eq!(
            in_flight.stop_lost(&asked, &[kept.0, running.0]),
            0,
            "nothing lost while both running attempts are held"
        );
        assert_eq!(
            in_flight.stop_lost(&asked, &held),
            1,
            "only task 2 lost its lease"
        );
        assert!(in_flight.lock().get(&running.0).is_none(), "forgotten");
    }

    #[tokio::test]
    async fn a_handler_whose_lease_is_lost_is_stopped() {
        let in_flight = InFlight::default();
        let asked = [hold(&in_flight, 1, 1)];
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let mut running = JoinSet::new();
        let handle = running.spawn(async move {
            // Stands for a handler sending e-mails for a long time; the sender is dropped
            // only when the future is.
            let _guard = dropped_tx;
            std::future::pending::<()>().await;
        });
        in_flight.set_abort(TaskId(1), handle);
        assert_eq!(in_flight.stop_lost(&asked, &[]), 1);
        let joined = running.join_next().await.expect("the handler's task");
        assert!(joined.unwrap_err().is_cancelled());
        assert!(
            dropped_rx.await.is_err(),
            "the handler's future was dropped"
        );
    }
}
