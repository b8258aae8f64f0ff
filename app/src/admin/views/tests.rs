//! Rendering every page from fixed read models: values are escaped wherever they land, and
//! the ids, classes and links the page's script and the browser tests rely on are there.

use super::fixture::{pages, HOSTILE};
use super::overview::{age, chart};
use super::*;

#[test]
fn links_encode_their_values() {
    assert_eq!(
        link(
            "/admin/tasks",
            &[("q", "a&b c".into()), ("status", String::new())]
        ),
        "/admin/tasks?q=a%26b+c"
    );
    let query = link("/admin/tasks", &[("q", "a&b c=é".into())]);
    let (_, encoded) = query.split_once('?').unwrap();
    let decoded: Vec<_> = form_urlencoded::parse(encoded.as_bytes()).collect();
    assert_eq!(decoded, [("q".into(), "a&b c=é".into())]);
    assert_eq!(link("/admin/tasks", &[]), "/admin/tasks");
}

#[test]
fn ages_read_naturally() {
    assert_eq!(age(None), "nothing waiting");
    assert_eq!(age(Some(0.25)), "250 ms");
    assert_eq!(age(Some(90.0)), "90.0 s");
    assert_eq!(age(Some(600.0)), "10 min");
}

#[test]
fn charts_scale_to_the_busiest_minute() {
    let svg = chart("t", &[("a", "a", vec![0, 5, 10])]).into_string();
    assert_eq!(
        svg.matches("<rect").count(),
        2,
        "no bar for an empty minute"
    );
    assert!(svg.contains("max 10/min"));
}

#[test]
fn every_value_is_escaped_wherever_it_lands() {
    assert_eq!(HOSTILE, r#"<script>alert("x&y")</script>'"#);
    let escaped = "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;'";
    for (name, html) in pages() {
        assert!(!html.contains("<script>"), "{name}: {html}");
        assert!(!html.contains("\"x&y\""), "{name}: {html}");
        assert!(!html.contains("csrf\"token"), "{name}: {html}");
        assert!(
            html.contains(escaped),
            "{name}: the hostile text is shown, escaped: {html}"
        );
    }
}

/// What each page must contain: the ids, classes and attributes `admin.js` and the browser
/// tests use, and the texts of its states.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "overview",
        &[
            r#"id="task-counts""#,
            r#"id="event-counts""#,
            r#"id="failure-rate""#,
        ],
    ),
    (
        "overview",
        &[r#"id="by-type""#, r#"data-status="dead""#, "≈1200", "6.2%"],
    ),
    (
        "overview",
        &[
            r#"<table class="list" id="due-backlog"><caption class="visually-hidden">"#,
            r#"<th class="num" scope="col">interactive</th><th class="num" scope="col">normal</th><th class="num" scope="col">bulk</th><th class="num" scope="col">total</th>"#,
            r#"<th scope="row">Beta &lt;script&gt;"#,
            r#"<td class="num">4</td><td class="num">250</td><td class="num">9000</td><td class="num">9254</td>"#,
            r#"<th scope="row">00000000-0000-0000-0000-000000000003</th>"#,
            r#"<th scope="row">(no institution)</th><td class="num">1</td>"#,
            r#"<tfoot><tr><th scope="row">all institutions</th><td class="num">6</td><td class="num">270</td><td class="num">9000</td><td class="num">9276</td>"#,
            "The 3 institutions with the most due tasks; the totals count every institution.",
        ],
    ),
    (
        "overview-empty",
        &[
            "No task is waiting, running or failed.",
            "Academic · Beta",
            "No task is due and waiting.",
        ],
    ),
    (
        "tasks",
        &[r#"<tr data-id="00000000-0000-0000-0000-000000000064" data-status="dead">"#],
    ),
    (
        "tasks",
        &[
            r#"id="tasks""#,
            r#"id="bulk-reprocess""#,
            r#"rel="next""#,
            "« Newest",
        ],
    ),
    (
        "tasks",
        &[r#"class="flash" id="flash" role="status""#, r#"max="1000""#],
    ),
    (
        "tasks-empty",
        &["No task matches these filters.", "End of the list"],
    ),
    ("events", &[r#"id="events""#, r#"<tr data-id=""#]),
    ("events-empty", &["No event matches these filters."]),
    (
        "task",
        &[
            r#"id="reprocess""#,
            "data-async",
            r#"id="copies""#,
            r#"class="attempts""#,
        ],
    ),
    (
        "task",
        &[
            r#"class="flash error" id="flash" role="alert""#,
            "12.3 ms",
            "3 of 5",
        ],
    ),
    (
        "task-running",
        &[
            "It can be reprocessed once it is finished.",
            "Not reprocessed.",
        ],
    ),
    (
        "event",
        &[r#"id="produced""#, r#"id="copies""#, r#"id="reprocess""#],
    ),
    (
        "event-pending",
        &["No task (yet).", "once it is dispatched or dead"],
    ),
    (
        "event",
        &[
            r#"<code>c-1</code> — <a class="inline" href="/admin/events?correlation_id=c-1&amp;archived=all">its events</a>"#,
            r#"<a class="inline" href="/admin/tasks?correlation_id=c-1&amp;archived=all">its tasks</a>, live and archived"#,
        ],
    ),
    (
        "event-copy",
        &[
            "Reprocessed by request",
            r#"<code>op-event-1</code> — <a class="inline" href="/admin/events?correlation_id=op-event-1&amp;archived=all">"#,
            r#"href="/admin/tasks?correlation_id=op-event-1&amp;archived=all""#,
        ],
    ),
    (
        "task-running",
        &[
            "Reprocessed by request",
            r#"href="/admin/tasks?correlation_id=op-task-1&amp;archived=all""#,
            r#"href="/admin/events?correlation_id=op-task-1&amp;archived=all""#,
        ],
    ),
    (
        "login",
        &[
            r#"class="login""#,
            r#"name="csrf" value="csrf&quot;x""#,
            "autofocus",
        ],
    ),
    ("login-error", &[r#"role="alert""#]),
    ("message", &["Back to the admin screen"]),
];

/// What every page with the header contains.
const LAYOUT: &[&str] = &[
    r#"id="live-dot""#,
    r#"id="flash""#,
    r#"id="live""#,
    r#"<script src="/admin/assets/admin.js" defer>"#,
    r#"name="csrf" value="csrf&quot;token""#,
];

#[test]
fn pages_keep_what_the_script_and_the_tests_use() {
    let pages: std::collections::HashMap<_, _> = pages().into_iter().collect();
    let with_layout = ["overview", "events", "tasks", "task", "event"];
    let layout = with_layout.iter().map(|page| (*page, LAYOUT));
    for (page, needles) in EXPECTED.iter().copied().chain(layout) {
        for needle in needles {
            assert!(pages[page].contains(needle), "{page} lacks {needle}");
        }
    }
}

#[test]
fn only_a_copy_names_the_request_that_made_it() {
    let pages: std::collections::HashMap<_, _> = pages().into_iter().collect();
    for page in ["task", "event", "event-pending"] {
        assert!(
            !pages[page].contains("Reprocessed by request"),
            "{page} is no copy"
        );
    }
    // The hostile correlation id is a value of the links' query, encoded.
    assert!(pages["task"].contains(
        r#"href="/admin/tasks?correlation_id=corr+%3Cscript%3Ealert%28%22x%26y%22%29%3C%2Fscript%3E%27&amp;archived=all""#
    ));
}
