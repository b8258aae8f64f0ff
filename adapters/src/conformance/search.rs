//! Conformance of the lists' searches (a correlation id, text in the payload): they find
//! rows in every state, whichever index an adapter answers them with.

use super::*;
use std::collections::BTreeSet;

fn needle(correlation: &str) -> NewTask {
    NewTask {
        payload: r#"{"note":"a Needle in the haystack"}"#.into(),
        correlation_id: Some(correlation.into()),
        ..task(None)
    }
}

async fn tasks_found(e: &Engine, filter: ListFilter) -> BTreeSet<(String, &'static str)> {
    let q = TaskQuery {
        filter,
        limit: 100,
        ..Default::default()
    };
    let found = e.log.list_tasks(&q, None).await.expect("list tasks");
    found
        .into_iter()
        .map(|v| (v.correlation_id.unwrap_or_default(), v.status.as_str()))
        .collect()
}

pub async fn searches_find_rows_in_every_state(e: &Engine) {
    // Five tasks that match, one per state, among others that do not.
    let states = ["succeeded", "dead", "retrying", "running"];
    let matching: Vec<NewTask> = states
        .iter()
        .map(|s| needle(&format!("corr-{s}")))
        .collect();
    e.tasks.enqueue(&matching).await.unwrap();
    let claimed = e.tasks.claim("w", &types(), 4, LONG_LEASE).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let outcome_of = |c: &ClaimedTask| match c.correlation_id.as_deref() {
        Some("corr-succeeded") => Some(TaskOutcome::Succeeded),
        Some("corr-dead") => Some(failed("broken", true)),
        Some("corr-retrying") => Some(failed("later", false)),
        _ => None,
    };
    let completions: Vec<Completion> = claimed
        .iter()
        .filter_map(|c| outcome_of(c).map(|o| completion(c, o)))
        .collect();
    e.tasks
        .complete("w", &completions, &measurable_policy())
        .await
        .unwrap();
    e.tasks
        .enqueue(&[
            needle("corr-pending"),
            NewTask {
                correlation_id: Some("corr-other".into()),
                ..task(None)
            },
        ])
        .await
        .unwrap();

    let expected: BTreeSet<(String, &'static str)> = [
        ("corr-succeeded", "succeeded"),
        ("corr-dead", "dead"),
        ("corr-retrying", "retrying"),
        ("corr-running", "running"),
        ("corr-pending", "pending"),
    ]
    .into_iter()
    .map(|(c, s)| (c.to_string(), s))
    .collect();
    for archived in [Archived::Live, Archived::All] {
        let text = ListFilter {
            text: Some("NEEDLE in".into()),
            archived,
            ..Default::default()
        };
        assert_eq!(tasks_found(e, text).await, expected, "text, {archived:?}");
    }
    for (corr, status) in &expected {
        let by_corr = ListFilter {
            correlation_id: Some(corr.clone()),
            ..Default::default()
        };
        let found = tasks_found(e, by_corr).await;
        assert_eq!(found, BTreeSet::from([(corr.clone(), *status)]), "{corr}");
    }

    // Events: one dispatched, one still pending.
    let walrus = |corr: &str| NewEvent {
        payload: r#"{"animal":"Walrus"}"#.into(),
        correlation_id: Some(corr.into()),
        ..event("Thing")
    };
    e.events.append(&[walrus("corr-early")]).await.unwrap();
    e.events
        .dispatch_pending(10, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    e.events
        .append(&[walrus("corr-late"), event("Thing")])
        .await
        .unwrap();
    for filter in [
        ListFilter {
            text: Some("walrus".into()),
            ..Default::default()
        },
        ListFilter {
            text: Some("walrus".into()),
            archived: Archived::All,
            ..Default::default()
        },
    ] {
        let q = EventQuery {
            filter,
            limit: 100,
            ..Default::default()
        };
        let mut found: Vec<(Option<String>, String)> = e
            .log
            .list_events(&q, None)
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.correlation_id, v.status.as_str().to_string()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                (Some("corr-early".into()), "dispatched".into()),
                (Some("corr-late".into()), "pending".into())
            ]
        );
    }
    for corr in ["corr-early", "corr-late"] {
        let q = EventQuery {
            filter: ListFilter {
                correlation_id: Some(corr.into()),
                ..Default::default()
            },
            limit: 100,
            ..Default::default()
        };
        let found = e.log.list_events(&q, None).await.unwrap();
        assert_eq!(found.len(), 1, "{corr}");
    }
}

/// What a text search answers, by table and archive scope: task ids and event ids.
async fn otters(e: &Engine) -> Vec<(Archived, Vec<u128>, Vec<u128>)> {
    let mut answers = Vec::new();
    for archived in Archived::ALL {
        let filter = ListFilter {
            text: Some("OTTER".into()),
            archived,
            ..Default::default()
        };
        let tasks = TaskQuery {
            filter: filter.clone(),
            limit: 100,
            ..Default::default()
        };
        let events = EventQuery {
            filter,
            limit: 100,
            ..Default::default()
        };
        let mut t: Vec<u128> = (e.log.list_tasks(&tasks, None).await.unwrap())
            .iter()
            .map(|v| v.id.0)
            .collect();
        let mut v: Vec<u128> = (e.log.list_events(&events, None).await.unwrap())
            .iter()
            .map(|v| v.id.0)
            .collect();
        t.sort();
        v.sort();
        answers.push((archived, t, v));
    }
    answers
}

/// Indexes in passes of `limit` rows until a pass indexes nothing, checking after each pass
/// that the searches answer `expected`. (On PostgreSQL a transaction of another test may hold
/// the indexing back: the answers must not change either way.)
async fn index_checking(e: &Engine, limit: u32, expected: &[(Archived, Vec<u128>, Vec<u128>)]) {
    for pass in 0.. {
        assert!(pass < 100, "indexing never caught up");
        let done = e.payloads.index_payloads(limit, 0).await.unwrap();
        assert_eq!(otters(e).await, expected, "after indexing pass {pass}");
        if done.tasks == 0 && done.events == 0 {
            break;
        }
    }
}

pub async fn text_searches_answer_alike_before_during_and_after_indexing(e: &Engine) {
    let otter = |n: u32| NewTask {
        payload: format!(r#"{{"animal":"an otter","n":{n}}}"#),
        ..task(None)
    };
    let other = NewTask {
        payload: r#"{"animal":"a heron"}"#.into(),
        ..task(None)
    };
    let mut batch: Vec<NewTask> = (0..5).map(otter).collect();
    batch.push(other.clone());
    e.tasks.enqueue(&batch).await.unwrap();
    // Two of them succeed (the archive takes them later), one stays running.
    let claimed = e.tasks.claim("w", &types(), 3, LONG_LEASE).await.unwrap();
    let done: Vec<Completion> = claimed[..2]
        .iter()
        .map(|c| completion(c, TaskOutcome::Succeeded))
        .collect();
    e.tasks.complete("w", &done, &quick_policy()).await.unwrap();
    let otter_event = NewEvent {
        payload: r#"{"seen":"Otters"}"#.into(),
        ..event("Thing")
    };
    e.events
        .append(&[otter_event.clone(), event("Thing"), otter_event.clone()])
        .await
        .unwrap();

    let before = otters(e).await;
    let live = &before[0];
    assert_eq!(live.0, Archived::Live);
    assert_eq!((live.1.len(), live.2.len()), (5, 2), "{before:?}");
    // Passes of 2 rows: some end in the middle of what is there to index.
    index_checking(e, 2, &before).await;

    // Rows added after indexing are found, and indexed in turn.
    e.tasks.enqueue(&[otter(5), other]).await.unwrap();
    e.events.append(&[otter_event]).await.unwrap();
    let grown = otters(e).await;
    assert_eq!((grown[0].1.len(), grown[0].2.len()), (6, 3), "{grown:?}");
    // The succeeded tasks move to the archive, the newest before any pass indexed it.
    let newest = e.tasks.claim("w", &types(), 10, LONG_LEASE).await.unwrap();
    let sixth = newest
        .iter()
        .find(|c| c.payload.contains("\"n\": 5") || c.payload.contains("\"n\":5"))
        .expect("the sixth otter is claimed");
    e.tasks
        .complete(
            "w",
            &[completion(sixth, TaskOutcome::Succeeded)],
            &quick_policy(),
        )
        .await
        .unwrap();
    e.harness.advance(Duration::from_millis(400)).await;
    let windows = campus_core::engine::retention::RetentionWindows {
        finished: Duration::from_millis(300),
        dead: Duration::from_secs(3600),
    };
    let moved = e.archive.archive_batch(&windows, 100).await.unwrap();
    assert_eq!(moved.tasks, 3, "the three succeeded tasks move");
    let after_archive = otters(e).await;
    for (archived, tasks, events) in &after_archive {
        let expected_tasks = match archived {
            Archived::Live => 3,
            Archived::Archived => 3,
            Archived::All => 6,
        };
        assert_eq!(
            tasks.len(),
            expected_tasks,
            "{archived:?}: {after_archive:?}"
        );
        assert_eq!(
            events.len(),
            if *archived == Archived::Archived {
                0
            } else {
                3
            }
        );
    }
    index_checking(e, 2, &after_archive).await;

    // Pages of 2 through live and archived matches, with another filter beside the text,
    // give each match once, newest first.
    let all = &after_archive[2];
    assert_eq!(all.0, Archived::All);
    let mut paged: Vec<u128> = Vec::new();
    let mut before = None;
    loop {
        let q = TaskQuery {
            filter: ListFilter {
                text: Some("otter".into()),
                archived: Archived::All,
                ..Default::default()
            },
            task_type: Some(task(None).task_type),
            before,
            limit: 2,
            ..Default::default()
        };
        let page = e.log.list_tasks(&q, None).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2 && page.windows(2).all(|w| w[0].id > w[1].id));
        before = page.last().map(|v| v.id);
        paged.extend(page.iter().map(|v| v.id.0));
    }
    assert!(
        paged.windows(2).all(|w| w[0] > w[1]),
        "newest first: {paged:?}"
    );
    paged.sort();
    assert_eq!(paged, all.1);
}
