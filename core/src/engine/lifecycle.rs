//! Lifecycle state machines of tasks and events.
//!
//! Task states (River/Oban-like):
//!
//! ```text
//!            claim                 succeed
//! pending ─────────► running ───────────────► succeeded
//!                      │  │ fail / lease expired / timeout (attempts left)
//!                      │  └──────────────────► retrying ──claim──► running
//!                      │ fail (permanent or no attempts left)
//!                      └─────────────────────► dead
//! cancel: pending | retrying ─► cancelled
//! ```
//! `succeeded`, `dead` and `cancelled` are final; a final item may be reprocessed, which
//! creates a new item and never changes this one.
//!
//! There is no "release" (a claim handed back uncounted): a daemon claims only what it starts
//! at once (never more than its free slots, only types it runs, within their limits), and an
//! attempt interrupted by a shutdown is a failed attempt like any other.

use std::fmt;

/// Status of a task row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Retrying,
    Dead,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Retrying,
        TaskStatus::Dead,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Retrying => "retrying",
            TaskStatus::Dead => "dead",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// No transition leaves a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Dead | TaskStatus::Cancelled
        )
    }

    /// Whether an operator may reprocess (copy) an item in this state.
    pub fn can_reprocess(self) -> bool {
        self.is_final()
    }
}

/// Something that happens to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskTransition {
    /// A worker claims a due task (counts an attempt).
    Claim,
    /// The handler finished without error.
    Succeed,
    /// The handler failed; `permanent` failures are not retried.
    Fail { permanent: bool },
    /// The claim's lease ran out (the worker died or hung); counts as a failed attempt.
    LeaseExpired,
    /// An operator cancels a task that has not run yet.
    Cancel,
}

/// A transition that the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    pub from: TaskStatus,
    pub transition: TaskTransition,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot apply {:?} to a {} task",
            self.transition,
            self.from.as_str()
        )
    }
}

impl std::error::Error for InvalidTransition {}

/// The part of a task the state machine decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState {
    pub status: TaskStatus,
    /// Attempts started so far (the running one included).
    pub attempt: u32,
    pub max_attempts: u32,
}

impl TaskState {
    /// A new task that has not run.
    pub fn new(max_attempts: u32) -> Self {
        TaskState {
            status: TaskStatus::Pending,
            attempt: 0,
            max_attempts: max_attempts.max(1),
        }
    }

    /// Applies `t`, or says why it is not allowed.
    pub fn apply(self, t: TaskTransition) -> Result<TaskState, InvalidTransition> {
        use TaskStatus::*;
        let invalid = Err(InvalidTransition {
            from: self.status,
            transition: t,
        });
        let next = match (self.status, t) {
            (Pending | Retrying, TaskTransition::Claim) => TaskState {
                status: Running,
                attempt: self.attempt + 1,
                ..self
            },
            (Running, TaskTransition::Succeed) => TaskState {
                status: Succeeded,
                ..self
            },
            (Running, TaskTransition::Fail { permanent }) => TaskState {
                status: self.after_failure(permanent),
                ..self
            },
            (Running, TaskTransition::LeaseExpired) => TaskState {
                status: self.after_failure(false),
                ..self
            },
            (Pending | Retrying, TaskTransition::Cancel) => TaskState {
                status: Cancelled,
                ..self
            },
            _ => return invalid,
        };
        Ok(next)
    }

    fn after_failure(self, permanent: bool) -> TaskStatus {
        if permanent || self.attempt >= self.max_attempts {
            TaskStatus::Dead
        } else {
            TaskStatus::Retrying
        }
    }

    /// Where running attempt number `attempt` of `max_attempts` goes when it ends: `None` is
    /// a success, `Some(permanent)` a failure. Total, unlike [`TaskState::apply`]: every end of
    /// a running attempt is a valid transition, so adapters recording outcomes need no error
    /// path for it.
    pub fn after_attempt(attempt: u32, max_attempts: u32, failure: Option<bool>) -> TaskStatus {
        let running = TaskState {
            status: TaskStatus::Running,
            attempt,
            max_attempts,
        };
        match failure {
            None => TaskStatus::Succeeded,
            Some(permanent) => running.after_failure(permanent),
        }
    }
}

/// Status of a domain event row: `pending → dispatched`, or on a fan-out failure
/// `retrying → … → dead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStatus {
    Pending,
    Dispatched,
    Retrying,
    Dead,
}

impl EventStatus {
    pub const ALL: [EventStatus; 4] = [
        EventStatus::Pending,
        EventStatus::Dispatched,
        EventStatus::Retrying,
        EventStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Dispatched => "dispatched",
            EventStatus::Retrying => "retrying",
            EventStatus::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<EventStatus> {
        EventStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn can_reprocess(self) -> bool {
        matches!(self, EventStatus::Dispatched | EventStatus::Dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn transition() -> impl Strategy<Value = TaskTransition> {
        prop_oneof![
            Just(TaskTransition::Claim),
            Just(TaskTransition::Succeed),
            any::<bool>().prop_map(|permanent| TaskTransition::Fail { permanent }),
            Just(TaskTransition::LeaseExpired),
            Just(TaskTransition::Cancel),
        ]
    }

    #[test]
    fn statuses_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        for s in EventStatus::ALL {
            assert_eq!(EventStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_failing_task_dies_after_max_attempts() {
        let mut s = TaskState::new(3);
        for expected in [TaskStatus::Retrying, TaskStatus::Retrying, TaskStatus::Dead] {
            s = s
                .apply(TaskTransition::Claim)
                .unwrap()
                .apply(TaskTransition::Fail { permanent: false })
                .unwrap();
            assert_eq!(s.status, expected);
        }
        assert!(s.apply(TaskTransition::Claim).is_err());
    }

    /// `after_attempt` agrees with `apply` on every end of a running attempt.
    #[test]
    fn after_attempt_matches_the_state_machine() {
        for max in 1..5 {
            for attempt in 1..=max {
                let s = TaskState {
                    status: TaskStatus::Running,
                    attempt,
                    max_attempts: max,
                };
                for (failure, t) in [
                    (None, TaskTransition::Succeed),
                    (Some(false), TaskTransition::Fail { permanent: false }),
                    (Some(true), TaskTransition::Fail { permanent: true }),
                ] {
                    let want = s.apply(t).unwrap().status;
                    assert_eq!(TaskState::after_attempt(attempt, max, failure), want);
                }
            }
        }
    }

    #[test]
    fn permanent_failure_is_dead_at_once() {
        let s = TaskState::new(5).apply(TaskTransition::Claim).unwrap();
        assert_eq!(
            s.apply(TaskTransition::Fail { permanent: true })
                .unwrap()
                .status,
            TaskStatus::Dead
        );
    }

    /// Every transition the lifecycle allows, written out independently of `apply`: from a
    /// status, a transition, and the status it leads to. `Fail`/`LeaseExpired` lead to
    /// `Retrying` while attempts are left and to `Dead` on the last one. Anything not listed
    /// here must be refused.
    const ALLOWED: &[(TaskStatus, &str, &str)] = &[
        (TaskStatus::Pending, "claim", "running"),
        (TaskStatus::Retrying, "claim", "running"),
        (TaskStatus::Running, "succeed", "succeeded"),
        (TaskStatus::Running, "fail", "retrying or dead"),
        (TaskStatus::Running, "fail permanently", "dead"),
        (TaskStatus::Running, "lease expired", "retrying or dead"),
        (TaskStatus::Pending, "cancel", "cancelled"),
        (TaskStatus::Retrying, "cancel", "cancelled"),
    ];

    fn name(t: TaskTransition) -> &'static str {
        match t {
            TaskTransition::Claim => "claim",
            TaskTransition::Succeed => "succeed",
            TaskTransition::Fail { permanent: false } => "fail",
            TaskTransition::Fail { permanent: true } => "fail permanently",
            TaskTransition::LeaseExpired => "lease expired",
            TaskTransition::Cancel => "cancel",
        }
    }

    const TRANSITIONS: [TaskTransition; 6] = [
        TaskTransition::Claim,
        TaskTransition::Succeed,
        TaskTransition::Fail { permanent: false },
        TaskTransition::Fail { permanent: true },
        TaskTransition::LeaseExpired,
        TaskTransition::Cancel,
    ];

    /// What the table says `t` does to `s`: the next state, or `None` for a refusal.
    fn expected(s: TaskState, t: TaskTransition) -> Option<TaskState> {
        let (_, _, to) = ALLOWED
            .iter()
            .find(|(from, tr, _)| *from == s.status && *tr == name(t))?;
        let last = s.attempt >= s.max_attempts;
        let (status, attempt) = match *to {
            "running" => (TaskStatus::Running, s.attempt + 1),
            "succeeded" => (TaskStatus::Succeeded, s.attempt),
            "dead" => (TaskStatus::Dead, s.attempt),
            "cancelled" => (TaskStatus::Cancelled, s.attempt),
            "retrying or dead" if last => (TaskStatus::Dead, s.attempt),
            "retrying or dead" => (TaskStatus::Retrying, s.attempt),
            other => unreachable!("unknown target {other}"),
        };
        Some(TaskState {
            status,
            attempt,
            ..s
        })
    }

    /// Every status, attempt count and transition against the table: the allowed ones are
    /// accepted with the table's outcome, every other one is refused.
    #[test]
    fn every_transition_matches_the_table() {
        let (mut accepted, mut refused) = (0, 0);
        for status in TaskStatus::ALL {
            for max_attempts in 1..4 {
                for attempt in 0..=max_attempts {
                    let s = TaskState {
                        status,
                        attempt,
                        max_attempts,
                    };
                    for t in TRANSITIONS {
                        match (s.apply(t), expected(s, t)) {
                            (Ok(next), Some(want)) => {
                                assert_eq!(next, want, "{t:?} on {s:?}");
                                accepted += 1;
                            }
                            (Err(e), None) => {
                                assert_eq!((e.from, e.transition), (status, t));
                                refused += 1;
                            }
                            (got, want) => {
                                panic!("{t:?} on {s:?}: got {got:?}, the table says {want:?}")
                            }
                        }
                    }
                }
            }
        }
        assert!(accepted > 0 && refused > 0, "{accepted} / {refused}");
    }

    proptest! {
        /// Whatever sequence of transitions happens, each one is accepted exactly when the
        /// table allows it and leads where the table says; the state stays valid: attempts
        /// never exceed the maximum, final states are never left, running always has a
        /// counted attempt.
        #[test]
        fn task_state_machine_never_reaches_an_invalid_state(
            max in 1u32..8,
            ts in proptest::collection::vec(transition(), 0..60),
        ) {
            let mut s = TaskState::new(max);
            for t in ts {
                let want = expected(s, t);
                match s.apply(t) {
                    Ok(next) => {
                        prop_assert_eq!(Some(next), want, "{:?} on {:?}", t, s);
                        prop_assert!(!s.status.is_final(), "left final state {:?}", s.status);
                        prop_assert!(next.attempt <= next.max_attempts);
                        if next.status == TaskStatus::Running { prop_assert!(next.attempt >= 1); }
                        if next.status == TaskStatus::Retrying { prop_assert!(next.attempt < next.max_attempts); }
                        if next.status == TaskStatus::Pending { prop_assert_eq!(next.attempt, 0); }
                        s = next;
                    }
                    Err(e) => {
                        prop_assert_eq!(want, None, "{:?} on {:?} was refused", t, s);
                        prop_assert_eq!(e.from, s.status);
                    }
                }
            }
        }
    }
}
