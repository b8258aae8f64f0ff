//! A proptest state-machine test of the task lifecycle: random sequences of enqueue, claim,
//! complete (including stale completions), lease expiry, rescue and reprocess run against the
//! real PostgreSQL queue and a simple model; after every step the stored tasks must match the
//! model. No task is lost, no invalid transition happens, no stale holder completes a task.

use super::testing::{drop_database, fresh_database};
use super::{Notifier, PgStore};
use campus_core::engine::{RetryPolicy, TaskState, TaskStatus, TaskTransition};
use campus_core::ids::TaskId;
use campus_ports::{ClaimTypes, Completion, NewTask, PortError, TaskOutcome, TaskQueue};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Enqueue,
    Claim {
        worker: u8,
        limit: u8,
    },
    Complete {
        task: u8,
        worker: u8,
        outcome: u8,
        stale: bool,
    },
    Expire {
        task: u8,
    },
    Rescue,
    Reprocess {
        task: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Enqueue),
        3 => (0u8..3, 1u8..4).prop_map(|(worker, limit)| Op::Claim { worker, limit }),
        4 => (any::<u8>(), 0u8..3, 0u8..3, proptest::bool::weighted(0.2))
            .prop_map(|(task, worker, outcome, stale)| Op::Complete { task, worker, outcome, stale }),
        1 => any::<u8>().prop_map(|task| Op::Expire { task }),
        1 => Just(Op::Rescue),
        1 => any::<u8>().prop_map(|task| Op::Reprocess { task }),
    ]
}

#[derive(Debug, Clone)]
struct Model {
    id: TaskId,
    state: TaskState,
    holder: Option<u8>,
    expired: bool,
    copy_of: Option<TaskId>,
}

const MAX_ATTEMPTS: u32 = 3;

fn worker(w: u8) -> String {
    format!("w{w}")
}

async fn run(store: &PgStore, ops: Vec<Op>) -> Result<(), TestCaseError> {
    sqlx::query("TRUNCATE tasks CASCADE")
        .execute(store.pool())
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let retry = RetryPolicy {
        base: Duration::ZERO,
        cap: Duration::ZERO,
        max_attempts: MAX_ATTEMPTS,
    };
    let mut model: Vec<Model> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Enqueue => {
                let key = format!("task-{step}");
                let task = NewTask {
                    task_type: "t".into(),
                    payload: "{}".into(),
                    institution_id: None,
                    correlation_id: None,
                    max_attempts: MAX_ATTEMPTS,
                    idempotency_key: Some(key.clone()),
                    run_at: None,
                };
                prop_assert_eq!(store.enqueue(&[task]).await.unwrap(), 1);
                let id: uuid::Uuid =
                    sqlx::query_scalar("SELECT id FROM tasks WHERE idempotency_key = $1")
                        .bind(&key)
                        .fetch_one(store.pool())
                        .await
                        .unwrap();
                model.push(Model {
                    id: TaskId(id.as_u128()),
                    state: TaskState::new(MAX_ATTEMPTS),
                    holder: None,
                    expired: false,
                    copy_of: None,
                });
            }
            Op::Claim { worker: w, limit } => {
                let claimable = model
                    .iter()
                    .filter(|m| {
                        matches!(m.state.status, TaskStatus::Pending | TaskStatus::Retrying)
                    })
                    .count();
                let claimed = store
                    .claim(
                        &worker(w),
                        &ClaimTypes::of(["t"]),
                        u32::from(limit),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap();
                prop_assert_eq!(claimed.len(), claimable.min(usize::from(limit)));
                for c in claimed {
                    let m = model
                        .iter_mut()
                        .find(|m| m.id == c.id)
                        .expect("claimed a task the model knows");
                    m.state = m
                        .state
                        .apply(TaskTransition::Claim)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(c.attempt, m.state.attempt);
                    m.holder = Some(w);
                    m.expired = false;
                }
            }
            Op::Complete {
                task,
                worker: w,
                outcome,
                stale,
            } => {
                if model.is_empty() {
                    continue;
                }
                let i = usize::from(task) % model.len();
                let m = &model[i];
                let attempt = if stale {
                    m.state.attempt.saturating_sub(1)
                } else {
                    m.state.attempt
                };
                let (outcome, transition) = match outcome {
                    0 => (TaskOutcome::Succeeded, TaskTransition::Succeed),
                    1 => (
                        TaskOutcome::Failed {
                            message: "x".into(),
                            permanent: false,
                        },
                        TaskTransition::Fail { permanent: false },
                    ),
                    _ => (
                        TaskOutcome::Failed {
                            message: "x".into(),
                            permanent: true,
                        },
                        TaskTransition::Fail { permanent: true },
                    ),
                };
                let completion = Completion {
                    id: m.id,
                    attempt,
                    max_attempts: MAX_ATTEMPTS,
                    outcome,
                    duration: Duration::ZERO,
                };
                let accepted = store
                    .complete(&worker(w), &[completion], &retry)
                    .await
                    .unwrap();
                let current_holder =
                    m.state.status == TaskStatus::Running && m.holder == Some(w) && !stale;
                prop_assert_eq!(
                    accepted,
                    usize::from(current_holder),
                    "only the current holder of the current attempt completes"
                );
                if current_holder {
                    let m = &mut model[i];
                    m.state = m
                        .state
                        .apply(transition)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    m.holder = None;
                }
            }
            Op::Expire { task } => {
                if model.is_empty() {
                    continue;
                }
                let i = usize::from(task) % model.len();
                if model[i].state.status == TaskStatus::Running {
                    sqlx::query(
                        "UPDATE tasks SET locked_until = now() - interval '1 second' WHERE id = $1",
                    )
                    .bind(uuid::Uuid::from_u128(model[i].id.0))
                    .execute(store.pool())
                    .await
                    .unwrap();
                    model[i].expired = true;
                }
            }
            Op::Rescue => {
                let rescued = store.rescue_expired(&retry, 1000).await.unwrap();
                let mut expected = 0;
                for m in model
                    .iter_mut()
                    .filter(|m| m.state.status == TaskStatus::Running && m.expired)
                {
                    m.state = m
                        .state
                        .apply(TaskTransition::LeaseExpired)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    m.holder = None;
                    m.expired = false;
                    expected += 1;
                }
                prop_assert_eq!(rescued, expected);
            }
            Op::Reprocess { task } => {
                if model.is_empty() {
                    continue;
                }
                let original = model[usize::from(task) % model.len()].clone();
                let copy_waiting = model
                    .iter()
                    .any(|m| m.copy_of == Some(original.id) && !m.state.status.is_final());
                match store.reprocess_task(original.id, None, None).await {
                    Ok(copy) => {
                        prop_assert!(original.state.status.can_reprocess() && !copy_waiting);
                        model.push(Model {
                            id: copy,
                            state: TaskState::new(MAX_ATTEMPTS),
                            holder: None,
                            expired: false,
                            copy_of: Some(original.id),
                        });
                    }
                    Err(PortError::Conflict(_)) => {
                        prop_assert!(!original.state.status.can_reprocess() || copy_waiting)
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("reprocess failed: {e}"))),
                }
            }
        }
        // After every step the table is exactly the model: nothing lost, nothing invented.
        let rows: Vec<(uuid::Uuid, String, i32)> =
            sqlx::query_as("SELECT id, status, attempt FROM tasks")
                .fetch_all(store.pool())
                .await
                .unwrap();
        prop_assert_eq!(rows.len(), model.len());
        for (id, status, attempt) in rows {
            let m = model
                .iter()
                .find(|m| m.id.0 == id.as_u128())
                .expect("a stored task the model knows");
            prop_assert_eq!(status.as_str(), m.state.status.as_str());
            prop_assert_eq!(u32::try_from(attempt).unwrap(), m.state.attempt);
        }
    }
    Ok(())
}

#[test]
fn the_task_queue_follows_the_lifecycle_model() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, pool) = rt
        .block_on(fresh_database("campus_model_test"))
        .expect("test database");
    let store = PgStore::new(pool, Notifier::disabled());
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..50), |ops| {
        rt.block_on(run(&store, ops))
    });
    rt.block_on(store.pool().close());
    rt.block_on(drop_database(&url)).unwrap();
    if let Err(e) = result {
        panic!("{e}");
    }
}
