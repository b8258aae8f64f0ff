//! Conformance of the task queue: unique keys, exclusive claims under concurrency, fenced
//! completions and heartbeats, retries with backoff, dead letters, claim order, leases and
//! their rescue.

use super::*;
use campus_core::engine::TaskStatus;
use campus_core::ids::TaskId;

async fn claim(e: &Engine, worker: &str, limit: u32, lease: Duration) -> Vec<ClaimedTask> {
    e.tasks
        .claim(worker, &types(), limit, lease)
        .await
        .expect("claim")
}

pub async fn enqueue_is_idempotent_per_key(e: &Engine) {
    let q = &e.tasks;
    assert_eq!(
        q.enqueue(&[task(Some("k")), task(Some("k"))])
            .await
            .unwrap(),
        1
    );
    assert_eq!(q.enqueue(&[task(Some("k"))]).await.unwrap(), 0);
    assert_eq!(q.enqueue(&[task(None), task(None)]).await.unwrap(), 2);
    let mut bad = task(Some("bad"));
    bad.payload = "{not json".into();
    let refused = q.enqueue(&[task(Some("fine")), bad]).await;
    assert!(
        matches!(refused, Err(PortError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        all_tasks(e).await.len(),
        3,
        "a refused batch inserts nothing"
    );
    let fine = q.enqueue(&[task(Some("fine"))]).await.unwrap();
    assert_eq!(fine, 1, "nor does it keep its keys");
    let t = &claim(e, "w", 1, LONG_LEASE).await[0];
    assert_eq!((t.attempt, t.max_attempts, t.lineage_id), (1, 2, t.id));
    assert_eq!(t.payload, "{}");
}

pub async fn claims_are_exclusive_under_concurrency(e: &Engine) {
    let tasks: Vec<_> = (0..300).map(|_| task(None)).collect();
    e.tasks.enqueue(&tasks).await.unwrap();
    let claimers = (0..8).map(|i| {
        let q = e.tasks.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = q
                    .claim(&format!("w{i}"), &types(), 7, LONG_LEASE)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|t| (t.id, t.attempt)));
            }
        })
    });
    let mut all = Vec::new();
    for c in claimers.collect::<Vec<_>>() {
        all.extend(c.await.unwrap());
    }
    let n = all.len();
    assert!(all.iter().all(|(_, attempt)| *attempt == 1));
    all.sort();
    all.dedup();
    assert_eq!(
        (n, all.len()),
        (300, 300),
        "every task claimed exactly once"
    );
    let running = all_tasks(e).await;
    assert!(running.iter().all(|t| t.status == TaskStatus::Running));
}

pub async fn completion_is_fenced_by_worker_and_attempt(e: &Engine) {
    e.tasks.enqueue(&[task(None)]).await.unwrap();
    let t = claim(e, "w1", 10, LONG_LEASE).await.remove(0);
    assert!(
        claim(e, "w2", 10, LONG_LEASE).await.is_empty(),
        "a claimed task is not claimed twice"
    );
    let p = quick_policy();
    let ok = completion(&t, TaskOutcome::Succeeded);
    let stale = Completion {
        attempt: t.attempt + 1,
        ..ok.clone()
    };
    assert_eq!(
        e.tasks
            .complete("w2", std::slice::from_ref(&ok), &p)
            .await
            .unwrap(),
        0,
        "a stranger"
    );
    assert_eq!(
        e.tasks.complete("w1", &[stale], &p).await.unwrap(),
        0,
        "another attempt"
    );
    assert_eq!(
        e.tasks
            .complete("w1", std::slice::from_ref(&ok), &p)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        e.tasks.complete("w1", &[ok], &p).await.unwrap(),
        0,
        "the same attempt completes once"
    );
    let v = view(e, t.id).await;
    assert_eq!((v.status.as_str(), v.attempt), ("succeeded", 1));
    assert!(v.finished_at.is_some() && v.errors.is_empty());
    assert!(
        (v.duration_ms.unwrap() - 3.0).abs() < 0.01,
        "{:?}",
        v.duration_ms
    );
    assert!(
        e.tasks
            .heartbeat("w1", &[t.id], LONG_LEASE)
            .await
            .unwrap()
            .is_empty(),
        "a finished task is held by nobody"
    );
}

pub async fn failures_retry_with_backoff_then_die(e: &Engine) {
    let p = measurable_policy();
    e.tasks.enqueue(&[task(None)]).await.unwrap();
    let first = claim(e, "w1", 10, LONG_LEASE).await.remove(0);
    let done = e
        .tasks
        .complete("w1", &[completion(&first, failed("boom", false))], &p)
        .await
        .unwrap();
    assert_eq!(done, 1);
    let v = view(e, first.id).await;
    assert_eq!((v.status.as_str(), v.attempt), ("retrying", 1));
    assert_in_window(&p, 1, v.run_at.0 as f64 - at_ms(&v.errors[0]));
    let retry_at = v.run_at;

    let again = eventually(
        e,
        "the retry to be due",
        Duration::from_millis(2),
        || async { claim(e, "w1", 10, LONG_LEASE).await.pop() },
    )
    .await;
    assert_eq!((again.id, again.attempt), (first.id, 2));
    let started = view(e, again.id).await.started_at.unwrap();
    assert!(
        started >= retry_at,
        "claimed at {started:?}, before its retry at {retry_at:?}"
    );
    let done = e
        .tasks
        .complete("w1", &[completion(&again, failed("boom", false))], &p)
        .await
        .unwrap();
    assert_eq!(done, 1);
    let v = view(e, first.id).await;
    assert_eq!(
        (v.status.as_str(), v.attempt),
        ("dead", 2),
        "max_attempts = 2"
    );
    let errors: Vec<(u32, &str)> = v
        .errors
        .iter()
        .map(|x| (x.attempt, x.message.as_str()))
        .collect();
    assert_eq!(errors, [(1, "boom"), (2, "boom")]);
    e.harness.advance(Duration::from_millis(100)).await;
    assert!(
        claim(e, "w1", 10, LONG_LEASE).await.is_empty(),
        "dead tasks stay dead"
    );
}

pub async fn a_failure_may_say_when_to_retry(e: &Engine) {
    let p = measurable_policy();
    let mut three = task(None);
    three.max_attempts = 3;
    e.tasks.enqueue(&[three]).await.unwrap();
    let first = claim(e, "w", 10, LONG_LEASE).await.remove(0);
    let hour = Duration::from_secs(3600);
    let later = TaskOutcome::Failed {
        message: "come back in an hour".into(),
        permanent: false,
        retry_in: Some(hour),
    };
    e.tasks
        .complete("w", &[completion(&first, later)], &p)
        .await
        .unwrap();
    let v = view(e, first.id).await;
    assert_eq!(v.status.as_str(), "retrying");
    let delay_ms = v.run_at.0 as f64 - at_ms(&v.errors[0]);
    assert!(
        (3_599_000.0..=3_601_000.0).contains(&delay_ms),
        "retried after the hour asked for, not the policy's backoff: {delay_ms} ms"
    );
    e.harness.advance(Duration::from_millis(100)).await;
    assert!(
        claim(e, "w", 10, LONG_LEASE).await.is_empty(),
        "not due yet"
    );
}

pub async fn permanent_failures_are_dead_at_once(e: &Engine) {
    let mut five = task(None);
    five.max_attempts = 5;
    e.tasks.enqueue(&[five]).await.unwrap();
    let t = claim(e, "w", 10, LONG_LEASE).await.remove(0);
    let outcome = completion(&t, failed("bad input", true));
    assert_eq!(
        e.tasks
            .complete("w", &[outcome], &quick_policy())
            .await
            .unwrap(),
        1
    );
    let v = view(e, t.id).await;
    assert_eq!(
        (v.status.as_str(), v.attempt, v.max_attempts),
        ("dead", 1, 5)
    );
    assert_eq!(v.errors[0].message, "bad input");
    e.harness.advance(Duration::from_millis(20)).await;
    assert!(claim(e, "w", 10, LONG_LEASE).await.is_empty());
}

pub async fn tasks_are_claimed_oldest_due_first(e: &Engine) {
    let numbered = |n: u32| NewTask {
        payload: format!(r#"{{"n":{n}}}"#),
        ..task(None)
    };
    for n in 0..3 {
        e.tasks.enqueue(&[numbered(n)]).await.unwrap();
    }
    e.tasks.enqueue(&[numbered(3), numbered(4)]).await.unwrap();
    let mut order = Vec::new();
    let mut claimed = Vec::new();
    for _ in 0..5 {
        let t = claim(e, "w", 1, LONG_LEASE).await.remove(0);
        order.push(t.payload.clone());
        claimed.push(t);
    }
    let expected: Vec<String> = (0..5).map(|n| format!(r#"{{"n": {n}}}"#)).collect();
    assert_eq!(order, expected, "in the order they were enqueued");

    // A retry waiting for its delay does not block younger due work, and runs once due.
    let slow = RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_millis(200),
        max_attempts: 3,
    };
    let failing = completion(&claimed[0], failed("later", false));
    e.tasks.complete("w", &[failing], &slow).await.unwrap();
    e.tasks.enqueue(&[numbered(5)]).await.unwrap();
    let next = claim(e, "w", 1, LONG_LEASE).await.remove(0);
    let retry_at = view(e, claimed[0].id).await.run_at;
    if next.id == claimed[0].id {
        // Only possible when the retry's delay had already passed (a slow machine).
        let started = view(e, next.id).await.started_at.unwrap();
        assert!(started >= retry_at && !e.harness.exact_time());
    } else {
        assert_eq!(next.payload, r#"{"n": 5}"#);
        let retried = eventually(e, "the retry", Duration::from_millis(20), || async {
            claim(e, "w", 1, LONG_LEASE).await.pop()
        })
        .await;
        assert_eq!((retried.id, retried.attempt), (claimed[0].id, 2));
    }
}

pub async fn expired_leases_are_rescued_and_heartbeats_keep_them(e: &Engine) {
    let p = quick_policy();
    e.tasks.enqueue(&[task(None), task(None)]).await.unwrap();
    let claimed = claim(e, "w1", 10, SHORT_LEASE).await;
    assert_eq!(claimed.len(), 2);
    let (lost, kept) = (claimed[0].id, claimed[1].id);
    // One holder keeps answering; a stranger's heartbeat holds nothing.
    let held = e.tasks.heartbeat("w1", &[kept], LONG_LEASE).await.unwrap();
    assert_eq!(held, vec![kept]);
    let stranger = e
        .tasks
        .heartbeat("w2", &[kept, lost], LONG_LEASE)
        .await
        .unwrap();
    assert_eq!(stranger, Vec::<TaskId>::new(), "only the holder");
    e.harness.advance(Duration::from_millis(5)).await;
    assert_eq!(e.tasks.rescue_expired(&p, 100).await.unwrap(), 1);
    let v = view(e, lost).await;
    assert_eq!(
        (v.status.as_str(), v.attempt),
        ("retrying", 1),
        "the attempt counts"
    );
    assert!(
        v.errors[0].message.contains("lease expired") && v.errors[0].message.contains("w1"),
        "{:?}",
        v.errors
    );
    assert_eq!(view(e, kept).await.status, TaskStatus::Running);

    // The silent worker's late completion and heartbeat are refused.
    let late = completion(&claimed[0], TaskOutcome::Succeeded);
    assert_eq!(e.tasks.complete("w1", &[late], &p).await.unwrap(), 0);
    assert!(e
        .tasks
        .heartbeat("w1", &[lost], LONG_LEASE)
        .await
        .unwrap()
        .is_empty());
    let again = eventually(
        e,
        "the rescued task to be due",
        Duration::from_millis(2),
        || async { claim(e, "w2", 10, SHORT_LEASE).await.pop() },
    )
    .await;
    assert_eq!((again.id, again.attempt), (lost, 2));
    // Expired on its last attempt: dead.
    e.harness.advance(Duration::from_millis(5)).await;
    assert_eq!(e.tasks.rescue_expired(&p, 100).await.unwrap(), 1);
    let v = view(e, lost).await;
    assert_eq!((v.status.as_str(), v.attempt), ("dead", 2));
    assert!(v.finished_at.is_some());
    assert_eq!(v.errors.len(), 2);

    // The kept task's lease still runs: nothing to rescue, and its holder completes it.
    assert_eq!(e.tasks.rescue_expired(&p, 100).await.unwrap(), 0);
    let done = completion(&claimed[1], TaskOutcome::Succeeded);
    assert_eq!(e.tasks.complete("w1", &[done], &p).await.unwrap(), 1);
    assert_eq!(view(e, kept).await.status, TaskStatus::Succeeded);
}
