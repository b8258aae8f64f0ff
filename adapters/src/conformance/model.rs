//! A proptest state-machine test of the task lifecycle: random sequences of enqueue, claim
//! (with leases that expire at once or never), complete (including stale completions and
//! strangers), heartbeat, lease expiry with rescue, and reprocess run against an adapter set
//! and a simple model; after every step the stored tasks must match the model. No task is
//! lost, no invalid transition happens, no stale holder completes or keeps a task.

use super::{types, Engine, LONG_LEASE, SHORT_LEASE};
use campus_core::engine::{RetryPolicy, TaskState, TaskStatus, TaskTransition};
use campus_core::ids::TaskId;
use campus_ports::{Completion, NewTask, PortError, TaskOutcome, TaskQuery};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Enqueue,
    Claim {
        worker: u8,
        limit: u8,
        short: bool,
    },
    Complete {
        task: u8,
        worker: u8,
        outcome: u8,
        stale: bool,
    },
    Heartbeat {
        worker: u8,
    },
    ExpireAndRescue,
    Reprocess {
        task: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Enqueue),
        3 => (0u8..3, 1u8..4, proptest::bool::weighted(0.3))
            .prop_map(|(worker, limit, short)| Op::Claim { worker, limit, short }),
        4 => (any::<u8>(), 0u8..3, 0u8..3, proptest::bool::weighted(0.2))
            .prop_map(|(task, worker, outcome, stale)| Op::Complete { task, worker, outcome, stale }),
        1 => (0u8..3).prop_map(|worker| Op::Heartbeat { worker }),
        1 => Just(Op::ExpireAndRescue),
        1 => any::<u8>().prop_map(|task| Op::Reprocess { task }),
    ]
}

#[derive(Debug, Clone)]
struct Model {
    id: TaskId,
    state: TaskState,
    holder: Option<u8>,
    /// Claimed with a lease that has run out by the next `ExpireAndRescue`.
    short_lease: bool,
    copy_of: Option<TaskId>,
}

const MAX_ATTEMPTS: u32 = 3;

fn worker(w: u8) -> String {
    format!("w{w}")
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Runs the property against adapter sets made by `make` (one set for all cases, emptied
/// between them).
pub fn check(make: impl Fn() -> Pin<Box<dyn Future<Output = Engine> + Send>>) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let engine = rt.block_on(make());
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..50), |ops| {
        rt.block_on(run(&engine, ops))
    });
    rt.block_on(engine.harness.finish());
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn run(e: &Engine, ops: Vec<Op>) -> Result<(), TestCaseError> {
    e.harness.reset().await;
    let mut model: Vec<Model> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        apply(e, &mut model, step, op).await?;
        // After every step the store is exactly the model: nothing lost, nothing invented.
        let q = TaskQuery {
            limit: 200,
            ..Default::default()
        };
        let stored = e.log.list_tasks(&q, None).await.map_err(fail)?;
        prop_assert_eq!(stored.len(), model.len());
        for t in stored {
            let m = model
                .iter()
                .find(|m| m.id == t.id)
                .ok_or_else(|| fail("a stored task the model does not know"))?;
            prop_assert_eq!(t.status.as_str(), m.state.status.as_str());
            prop_assert_eq!(t.attempt, m.state.attempt);
        }
    }
    Ok(())
}

/// No delay: a failed task is due again at once.
fn retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::ZERO,
        cap: Duration::ZERO,
        max_attempts: MAX_ATTEMPTS,
    }
}

async fn apply(
    e: &Engine,
    model: &mut Vec<Model>,
    step: usize,
    op: Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Enqueue => enqueue(e, model, step).await,
        Op::Claim {
            worker,
            limit,
            short,
        } => claim(e, model, worker, limit, short).await,
        Op::Complete {
            task,
            worker,
            outcome,
            stale,
        } if !model.is_empty() => {
            let i = usize::from(task) % model.len();
            complete(e, &mut model[i], worker, outcome, stale).await
        }
        Op::Heartbeat { worker } => heartbeat(e, model, worker).await,
        Op::ExpireAndRescue => expire_and_rescue(e, model).await,
        Op::Reprocess { task } if !model.is_empty() => {
            let i = usize::from(task) % model.len();
            reprocess(e, model, i).await
        }
        Op::Complete { .. } | Op::Reprocess { .. } => Ok(()),
    }
}

async fn enqueue(e: &Engine, model: &mut Vec<Model>, step: usize) -> Result<(), TestCaseError> {
    let task = NewTask {
        task_type: "t".into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: MAX_ATTEMPTS,
        idempotency_key: Some(format!("task-{step}")),
        run_at: None,
        priority: Default::default(),
    };
    prop_assert_eq!(e.tasks.enqueue(&[task]).await.map_err(fail)?, 1);
    let q = TaskQuery {
        limit: 1,
        ..Default::default()
    };
    let newest = e.log.list_tasks(&q, None).await.map_err(fail)?;
    model.push(Model {
        id: newest[0].id,
        state: TaskState::new(MAX_ATTEMPTS),
        holder: None,
        short_lease: false,
        copy_of: None,
    });
    Ok(())
}

async fn claim(
    e: &Engine,
    model: &mut [Model],
    w: u8,
    limit: u8,
    short: bool,
) -> Result<(), TestCaseError> {
    let claimable = model
        .iter()
        .filter(|m| matches!(m.state.status, TaskStatus::Pending | TaskStatus::Retrying))
        .count();
    let lease = if short { SHORT_LEASE } else { LONG_LEASE };
    let claimed = e
        .tasks
        .claim(&worker(w), &types(), u32::from(limit), lease)
        .await
        .map_err(fail)?;
    prop_assert_eq!(claimed.len(), claimable.min(usize::from(limit)));
    for c in claimed {
        let m = model
            .iter_mut()
            .find(|m| m.id == c.id)
            .ok_or_else(|| fail("claimed a task the model does not know"))?;
        m.state = m.state.apply(TaskTransition::Claim).map_err(fail)?;
        prop_assert_eq!(c.attempt, m.state.attempt);
        m.holder = Some(w);
        m.short_lease = short;
    }
    Ok(())
}

async fn complete(
    e: &Engine,
    m: &mut Model,
    w: u8,
    outcome: u8,
    stale: bool,
) -> Result<(), TestCaseError> {
    let attempt = if stale {
        m.state.attempt.saturating_sub(1)
    } else {
        m.state.attempt
    };
    let (outcome, transition) = match outcome {
        0 => (TaskOutcome::Succeeded, TaskTransition::Succeed),
        n => {
            let permanent = n == 2;
            let message = "x".into();
            (
                TaskOutcome::Failed {
                    message,
                    permanent,
                    retry_in: None,
                },
                TaskTransition::Fail { permanent },
            )
        }
    };
    let completion = Completion {
        id: m.id,
        attempt,
        max_attempts: MAX_ATTEMPTS,
        outcome,
        duration: Duration::ZERO,
    };
    let accepted = e
        .tasks
        .complete(&worker(w), &[completion], &retry())
        .await
        .map_err(fail)?;
    let current_holder = m.state.status == TaskStatus::Running && m.holder == Some(w) && !stale;
    prop_assert_eq!(
        accepted,
        usize::from(current_holder),
        "only the current holder of the current attempt completes"
    );
    if current_holder {
        m.state = m.state.apply(transition).map_err(fail)?;
        m.holder = None;
    }
    Ok(())
}

async fn heartbeat(e: &Engine, model: &mut [Model], w: u8) -> Result<(), TestCaseError> {
    let all: Vec<TaskId> = model.iter().map(|m| m.id).collect();
    let held: BTreeSet<TaskId> = e
        .tasks
        .heartbeat(&worker(w), &all, LONG_LEASE)
        .await
        .map_err(fail)?
        .into_iter()
        .collect();
    let mut expected = BTreeSet::new();
    for m in model.iter_mut().filter(|m| m.holder == Some(w)) {
        expected.insert(m.id);
        m.short_lease = false;
    }
    prop_assert_eq!(
        held,
        expected,
        "a heartbeat keeps exactly what the worker holds"
    );
    Ok(())
}

async fn expire_and_rescue(e: &Engine, model: &mut [Model]) -> Result<(), TestCaseError> {
    e.harness.advance(SHORT_LEASE * 3).await;
    let rescued = e.tasks.rescue_expired(&retry(), 1000).await.map_err(fail)?;
    let mut expected = 0;
    for m in model
        .iter_mut()
        .filter(|m| m.holder.is_some() && m.short_lease)
    {
        m.state = m.state.apply(TaskTransition::LeaseExpired).map_err(fail)?;
        m.holder = None;
        expected += 1;
    }
    prop_assert_eq!(rescued, expected);
    Ok(())
}

async fn reprocess(e: &Engine, model: &mut Vec<Model>, i: usize) -> Result<(), TestCaseError> {
    let original = model[i].clone();
    let copy_waiting = model
        .iter()
        .any(|m| m.copy_of == Some(original.id) && !m.state.status.is_final());
    match e.tasks.reprocess_task(original.id, None, None).await {
        Ok(copy) => {
            prop_assert!(original.state.status.can_reprocess() && !copy_waiting);
            model.push(Model {
                id: copy,
                state: TaskState::new(MAX_ATTEMPTS),
                holder: None,
                short_lease: false,
                copy_of: Some(original.id),
            });
        }
        Err(PortError::Conflict(_)) => {
            prop_assert!(!original.state.status.can_reprocess() || copy_waiting)
        }
        Err(e) => return Err(fail(format!("reprocess failed: {e}"))),
    }
    Ok(())
}
