//! Heartbeats through the daemon: a handler running several leases long keeps its claim (the
//! leader's rescuer, which runs every second, never takes it back), so it runs exactly once.

use campus_ports::{NewTask, TaskQueue};
use campus_tests::extra::Gate;
use campus_tests::{eventually, TestApp};
use std::time::Duration;

#[tokio::test]
async fn a_task_running_longer_than_its_lease_keeps_it_and_runs_once() {
    let gate = Gate::new();
    let handler = gate.clone();
    let app = TestApp::spawn_custom(
        |s| s.lease = Duration::from_secs(1),
        move |c| c.default_registry().task("long_report", handler),
    )
    .await;
    app.store()
        .enqueue(&[NewTask {
            task_type: "long_report".into(),
            payload: "{}".into(),
            institution_id: None,
            correlation_id: Some("long-running".into()),
            max_attempts: 5,
            idempotency_key: None,
            run_at: None,
            priority: Default::default(),
        }])
        .await
        .unwrap();
    // (status, attempt, holder, lease end as text, errors, lease extended past `first`,
    // `first` more than three leases ago)
    type Row = (
        String,
        i32,
        Option<String>,
        Option<String>,
        String,
        bool,
        bool,
    );
    let row = |first: Option<String>| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, Row>(
                "SELECT status, attempt, locked_by, locked_until::text, errors::text,
                        coalesce(locked_until > $1::timestamptz, false),
                        coalesce(now() > $1::timestamptz + interval '3 seconds', false)
                 FROM tasks WHERE correlation_id = 'long-running'",
            )
            .bind(first)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (_, _, holder, first_lease, ..) =
        eventually("the task to start", Duration::from_secs(20), || async {
            // Claimed (in the database) and started (in the handler): the claim commits first.
            Some(row(None).await).filter(|r| r.0 == "running" && gate.runs() == 1)
        })
        .await;
    assert!(holder.is_some() && first_lease.is_some());

    // Wait until the first lease is three leases in the past, checking on every look that the
    // same holder still runs the first attempt.
    eventually(
        "the first lease to be long expired",
        Duration::from_secs(30),
        || async {
            let (status, attempt, locked_by, _, errors, extended, long_ago) =
                row(first_lease.clone()).await;
            assert_eq!(
                (status.as_str(), attempt, &locked_by, errors.as_str()),
                ("running", 1, &holder, "[]"),
                "the running task lost its claim"
            );
            (extended && long_ago).then_some(())
        },
    )
    .await;
    assert_eq!(gate.runs(), 1, "nobody else started it meanwhile");

    gate.open();
    let (status, attempt, locked_by, _, errors, ..) =
        eventually("the task to finish", Duration::from_secs(20), || async {
            Some(row(None).await).filter(|r| r.0 != "running")
        })
        .await;
    assert_eq!(
        (status.as_str(), attempt, locked_by, errors.as_str()),
        ("succeeded", 1, None, "[]")
    );
    assert_eq!(gate.runs(), 1, "it ran exactly once");
    app.stop().await;
}
