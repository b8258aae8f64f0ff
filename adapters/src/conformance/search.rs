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
