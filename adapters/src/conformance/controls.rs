//! Conformance of what daemons and operators steer the queue with: claims limited to the
//! types a daemon knows (and per-type caps), paused types, delayed tasks, cancel, the
//! maintenance leader's lock, wake-ups that are hints, never the truth, and the roster of
//! running daemons.

use super::*;
use campus_core::engine::TaskStatus;
use campus_core::ids::{InstitutionId, TaskId};
use campus_core::Timestamp;

/// A task of `task_type` (2 attempts), due at `run_at` (`None`: now).
fn typed(task_type: &str, run_at: Option<Timestamp>) -> NewTask {
    NewTask {
        task_type: task_type.into(),
        run_at,
        ..task(None)
    }
}

async fn claim_types(e: &Engine, types: &ClaimTypes, limit: u32) -> Vec<String> {
    let mut got: Vec<String> = e
        .tasks
        .claim("w", types, limit, LONG_LEASE)
        .await
        .expect("claim")
        .into_iter()
        .map(|t| t.task_type)
        .collect();
    got.sort();
    got
}

pub async fn a_claim_takes_only_the_types_asked_for_within_their_caps(e: &Engine) {
    let tasks: Vec<_> = ["a", "a", "a", "b", "b", "b", "c", "c"]
        .into_iter()
        .map(|t| typed(t, None))
        .collect();
    e.tasks.enqueue(&tasks).await.unwrap();
    assert!(
        claim_types(e, &ClaimTypes::default(), 10).await.is_empty(),
        "no type, no claim"
    );
    let a_and_two_b = ClaimTypes {
        any: vec!["a".into()],
        capped: vec![("b".into(), 2)],
        ..ClaimTypes::default()
    };
    assert_eq!(
        claim_types(e, &a_and_two_b, 10).await,
        ["a", "a", "a", "b", "b"],
        "every `a`, `b` up to its cap, never `c`"
    );
    let capped_by_limit = ClaimTypes {
        any: vec!["c".into()],
        capped: vec![("b".into(), 5)],
        ..ClaimTypes::default()
    };
    assert_eq!(
        claim_types(e, &capped_by_limit, 1).await,
        ["b"],
        "the limit takes the earliest turns, capped type or not"
    );
    assert_eq!(
        claim_types(e, &ClaimTypes::of(["a", "b", "c"]), 10).await,
        ["c", "c"]
    );
}

pub async fn paused_types_are_not_claimed_until_resumed(e: &Engine) {
    e.tasks
        .enqueue(&[typed("a", None), typed("b", None)])
        .await
        .unwrap();
    e.controls.set_paused("a", true).await.unwrap();
    e.controls.set_paused("a", true).await.unwrap();
    assert_eq!(e.controls.paused_types().await.unwrap(), ["a"]);
    let both = ClaimTypes::of(["a", "b"]);
    assert_eq!(
        claim_types(e, &both, 10).await,
        ["b"],
        "a paused type waits"
    );
    let asked = ["a".to_string(), "b".into(), "z".into()];
    let counts: Vec<_> = e
        .controls
        .type_counts(&asked)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.task_type, c.waiting, c.running, c.dead))
        .collect();
    assert_eq!(
        counts,
        [
            ("a".into(), 1, 0, 0),
            ("b".into(), 0, 1, 0),
            ("z".into(), 0, 0, 0)
        ]
    );
    e.controls.set_paused("a", false).await.unwrap();
    assert!(e.controls.paused_types().await.unwrap().is_empty());
    assert_eq!(claim_types(e, &both, 10).await, ["a"], "resumed");
}

pub async fn delayed_tasks_wait_for_their_run_at(e: &Engine) {
    let now = e.harness.now().await;
    let run_at = Timestamp(now.0 + 300);
    e.tasks
        .enqueue(&[
            typed("later", Some(run_at)),
            typed("now", None),
            typed("overdue", Some(Timestamp(now.0 - 60_000))),
        ])
        .await
        .unwrap();
    // The backlog the archive gives way to counts due tasks only, up to its cap.
    assert_eq!(e.archive.due_backlog(10).await.unwrap(), 2);
    assert_eq!(e.archive.due_backlog(1).await.unwrap(), 1);
    // So do the gauges; the oldest due task has waited its minute.
    let depth = e.gauges.queue_depth(10).await.unwrap();
    assert_eq!(
        (
            depth.tasks_pending,
            depth.tasks_due,
            depth.tasks_running,
            depth.tasks_retrying
        ),
        (3, 2, 0, 0)
    );
    assert!(
        depth
            .oldest_due_task
            .is_some_and(|a| a >= Duration::from_secs(60)),
        "{depth:?}"
    );
    assert_eq!(depth.events_waiting, 0);
    assert_eq!(depth.oldest_due_event, None);
    assert_eq!(
        e.gauges.queue_depth(1).await.unwrap().tasks_pending,
        1,
        "capped"
    );
    let all = ClaimTypes::of(["later", "now", "overdue"]);
    let first: Vec<String> = e
        .tasks
        .claim("w", &all, 10, LONG_LEASE)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_type)
        .collect();
    assert_eq!(first, ["overdue", "now"], "due ones, the earliest first");
    let depth = e.gauges.queue_depth(10).await.unwrap();
    assert_eq!(
        (depth.tasks_pending, depth.tasks_due, depth.tasks_running),
        (1, 0, 2)
    );
    assert_eq!(depth.oldest_due_task, None);
    let later = eventually(e, "the delayed task", Duration::from_millis(50), || async {
        e.tasks
            .claim("w", &all, 10, LONG_LEASE)
            .await
            .unwrap()
            .pop()
    })
    .await;
    assert_eq!(later.task_type, "later");
    assert!(e.harness.now().await >= run_at, "claimed before its run_at");
}

pub async fn cancel_stops_a_waiting_task_and_refuses_others(e: &Engine) {
    e.tasks
        .enqueue(&[task(None), task(None), task(None)])
        .await
        .unwrap();
    let mut claimed = e.tasks.claim("w", &types(), 2, LONG_LEASE).await.unwrap();
    let (running, failing) = (claimed.remove(0), claimed.remove(0));
    e.tasks
        .complete(
            "w",
            &[completion(&failing, failed("try again", false))],
            &measurable_policy(),
        )
        .await
        .unwrap();
    assert_eq!(view(e, failing.id).await.status, TaskStatus::Retrying);
    let waiting = all_tasks(e)
        .await
        .into_iter()
        .find(|t| t.status == TaskStatus::Pending)
        .expect("the pending task")
        .id;

    let refused = e.controls.cancel_task(running.id, None).await;
    assert!(
        matches!(refused, Err(PortError::Conflict(_))),
        "{refused:?}"
    );
    let unknown = e.controls.cancel_task(TaskId(42), None).await;
    assert!(
        matches!(unknown, Err(PortError::NotFound(_))),
        "{unknown:?}"
    );
    let elsewhere = e
        .controls
        .cancel_task(waiting, Some(InstitutionId(7)))
        .await;
    assert!(
        matches!(elsewhere, Err(PortError::NotFound(_))),
        "out of scope: {elsewhere:?}"
    );

    for id in [waiting, failing.id] {
        e.controls.cancel_task(id, None).await.unwrap();
        assert_eq!(view(e, id).await.status, TaskStatus::Cancelled);
    }
    let again = e.controls.cancel_task(waiting, None).await;
    assert!(matches!(again, Err(PortError::Conflict(_))), "{again:?}");
    e.harness.advance(Duration::from_millis(200)).await;
    assert!(
        e.tasks
            .claim("w", &types(), 10, LONG_LEASE)
            .await
            .unwrap()
            .is_empty(),
        "cancelled tasks are never claimed"
    );
    let copy = e.tasks.reprocess_task(waiting, None, None).await.unwrap();
    assert_eq!(
        view(e, copy).await.status,
        TaskStatus::Pending,
        "reprocessable"
    );
}

pub async fn one_leader_at_a_time(e: &Engine) {
    let mut first = e.leader.try_acquire().await.unwrap().expect("a free lock");
    assert!(e.leader.try_acquire().await.unwrap().is_none(), "held");
    assert!(first.still_held().await);
    first.release().await;
    let next = eventually(
        e,
        "the released lock",
        Duration::from_millis(10),
        || async { e.leader.try_acquire().await.unwrap() },
    )
    .await;
    next.release().await;
}

pub async fn a_wake_up_is_only_a_hint(e: &Engine) {
    // Work written while nobody listens is found all the same: the store is the truth.
    e.tasks.enqueue(&[task(Some("unheard"))]).await.unwrap();
    let mut hints = e.wake_ups.subscribe();
    let wait = Duration::from_secs(10);
    let first = tokio::time::timeout(wait, hints.next()).await;
    assert_eq!(first, Ok(Some(WakeUp::All)), "a stream starts with `All`");
    assert_eq!(claim_types(e, &types(), 10).await, ["t"]);
    // A write after subscribing is heard.
    e.tasks.enqueue(&[task(Some("heard"))]).await.unwrap();
    let hint = tokio::time::timeout(wait, hints.next()).await;
    assert!(matches!(hint, Ok(Some(_))), "{hint:?}");
}

pub async fn type_stats_count_outcomes_and_latency(e: &Engine) {
    let since = e.harness.now().await;
    for key in ["a", "b", "c", "d"] {
        e.tasks.enqueue(&[task(Some(key))]).await.unwrap();
    }
    let claimed = e.tasks.claim("w", &types(), 10, LONG_LEASE).await.unwrap();
    assert_eq!(claimed.len(), 4);
    // 10 ms and 30 ms successes, a 50 ms permanent failure, a 5 ms failure that retries.
    let outcomes = [
        (TaskOutcome::Succeeded, 10),
        (TaskOutcome::Succeeded, 30),
        (failed("no", true), 50),
        (failed("later", false), 5),
    ];
    let completions: Vec<Completion> = claimed
        .iter()
        .zip(outcomes)
        .map(|(c, (outcome, ms))| Completion {
            duration: Duration::from_millis(ms),
            ..completion(c, outcome)
        })
        .collect();
    assert_eq!(
        e.tasks
            .complete("w", &completions, &quick_policy())
            .await
            .unwrap(),
        4
    );
    let stats = e.log.type_stats(since, None).await.unwrap();
    assert_eq!(stats.len(), 1, "{stats:?}");
    let t = &stats[0];
    assert_eq!((t.task_type.as_str(), t.succeeded, t.failed), ("t", 2, 2));
    assert_eq!(t.failure_rate(), 0.5);
    // Over the finished ones (10, 30, 50 ms), as PostgreSQL's percentile_cont.
    assert_eq!(t.p50_ms, Some(30.0));
    assert!((t.p95_ms.unwrap() - 48.0).abs() < 1e-9, "{t:?}");
    assert!(e
        .log
        .type_stats(since, Some(InstitutionId(9)))
        .await
        .unwrap()
        .is_empty());
}

pub async fn the_roster_lists_the_daemons_heard_from(e: &Engine) {
    let beat = |worker: &str, started: i64, leader: bool| DaemonBeat {
        worker_id: worker.into(),
        version: "1.2.3".into(),
        started_at: Timestamp(started),
        concurrency: 16,
        running: 3,
        leader,
        listening: true,
    };
    let day = Duration::from_secs(86_400);
    assert!(e.roster.heard_within(day).await.unwrap().is_empty());
    e.roster.beat(&beat("old", 1_000, false)).await.unwrap();
    e.roster.beat(&beat("young", 2_000, false)).await.unwrap();
    e.roster.beat(&beat("lead", 3_000, true)).await.unwrap();
    let heard = e.roster.heard_within(day).await.unwrap();
    let order: Vec<&str> = heard.iter().map(|d| d.beat.worker_id.as_str()).collect();
    assert_eq!(
        order,
        ["lead", "old", "young"],
        "the leader first, then by start"
    );
    assert_eq!(heard[1].beat, beat("old", 1_000, false), "every field kept");
    // A later beat replaces the earlier one: still one row per daemon.
    let mut again = beat("old", 1_000, false);
    again.running = 0;
    again.listening = false;
    e.roster.beat(&again).await.unwrap();
    let heard = e.roster.heard_within(day).await.unwrap();
    assert_eq!(heard.len(), 3);
    assert_eq!(heard[1].beat, again);
    // Silence grows while nobody beats; `within` leaves out who is silent for longer.
    e.harness.advance(Duration::from_millis(300)).await;
    e.roster.beat(&beat("young", 2_000, false)).await.unwrap();
    let recent = e
        .roster
        .heard_within(Duration::from_millis(250))
        .await
        .unwrap();
    let order: Vec<&str> = recent.iter().map(|d| d.beat.worker_id.as_str()).collect();
    assert_eq!(order, ["young"]);
    assert!(recent[0].silent_for < Duration::from_millis(250));
    let old = e.roster.heard_within(day).await.unwrap();
    assert!(old[0].silent_for >= Duration::from_millis(300), "{old:?}");
    // A daemon that leaves is gone.
    e.roster.left("lead").await.unwrap();
    e.roster.left("never-was").await.unwrap();
    let order: Vec<String> = e
        .roster
        .heard_within(day)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.beat.worker_id)
        .collect();
    assert_eq!(order, ["old", "young"]);
}
