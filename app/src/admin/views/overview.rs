//! The overview: counts by status (each a link to the list it counts), the failure rate, the
//! oldest waiting items, charts of the last hour, the due backlog by institution and priority,
//! and the task types needing attention.

use super::filters::{input, institution_select, Field, FilterValues};
use super::parts::{badge, link, none_yet, uuid, Names};
use campus_core::engine::Priority;
use campus_ports::{
    DueBacklog, EngineSummary, InstitutionBacklog, ListStatus, MinuteCounts, OperatorSession,
    PriorityCounts, StatusCount, TypeStats,
};
use maud::{html, Markup};

/// `scope`'s query pairs and `more`.
fn with<'a, const N: usize>(
    scope: &[(&'a str, String)],
    more: [(&'a str, &str); N],
) -> Vec<(&'a str, String)> {
    let more = more.into_iter().map(|(k, v)| (k, v.to_string()));
    scope.iter().cloned().chain(more).collect()
}

/// Each status's count as a link to the list (`list`) of that status within `scope`.
fn counts<S: ListStatus>(
    list: &str,
    counts: &[StatusCount<S>],
    scope: &[(&str, String)],
) -> Markup {
    html! {
        @if counts.is_empty() {
            span.muted { "none" }
        }
        @for (i, c) in counts.iter().enumerate() {
            @if i > 0 { " " }
            a href=(link(list, &with(scope, [("status", c.status.as_str())]))) data-status=(c.status.as_str()) {
                (badge(c.status.as_str()))
                span.n { @if c.approximate { "≈" } (c.count) }
            }
        }
    }
}

/// How long the oldest item has been waiting, in a unit that reads naturally.
pub(super) fn age(seconds: Option<f64>) -> String {
    match seconds {
        None => "nothing waiting".into(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// One series of a chart: CSS class, label, one value per minute.
type Series<'a> = (&'a str, &'a str, Vec<i64>);

const CHART_WIDTH: f64 = 600.0;
const CHART_HEIGHT: f64 = 100.0;

/// One bar of a chart: its series' class, its place and size, and its tooltip.
struct Bar {
    class: String,
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    tip: String,
}

/// The bars of every minute, each minute's series stacked, scaled to `max`.
fn bars(series: &[Series], minutes: usize, max: f64) -> Vec<Bar> {
    let width = CHART_WIDTH / minutes as f64;
    let mut bars = Vec::new();
    for i in 0..minutes {
        let mut y = CHART_HEIGHT;
        for (class, label, values) in series {
            let v = values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let height = v as f64 / max * (CHART_HEIGHT - 4.0);
            y -= height;
            bars.push(Bar {
                class: class.to_string(),
                x: i as f64 * width,
                y,
                width: (width - 1.0).max(1.0),
                height,
                tip: format!("{label}: {v} ({} min ago)", minutes - 1 - i),
            });
        }
    }
    bars
}

/// A number with one decimal, as SVG coordinates are written.
fn coordinate(v: f64) -> String {
    format!("{v:.1}")
}

/// A bar chart of the last hour: one bar per minute, stacked series.
pub(super) fn chart(title: &str, series: &[Series]) -> Markup {
    let minutes = series.first().map_or(0, |s| s.2.len()).max(1);
    let max = (0..minutes)
        .map(|i| {
            series
                .iter()
                .map(|s| s.2.get(i).copied().unwrap_or(0))
                .sum::<i64>()
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let text_y = CHART_HEIGHT + 11.0;
    html! {
        div.card.chart {
            h2 { (title) }
            svg viewBox={ "0 0 " (CHART_WIDTH) " " (CHART_HEIGHT + 14.0) }
                preserveAspectRatio="none" role="img" aria-label=(title) {
                @for b in bars(series, minutes, max as f64) {
                    rect class=(b.class) x=(coordinate(b.x)) y=(coordinate(b.y))
                        width=(coordinate(b.width)) height=(coordinate(b.height)) {
                        title { (b.tip) }
                    }
                }
                text.axis x="0" y=(text_y) { "60 min ago" }
                text.axis x=(CHART_WIDTH) y=(text_y) text-anchor="end" {
                    "now · max " (max) "/min"
                }
            }
            div.legend {
                @for (class, label, values) in series {
                    i class=(class) {}
                    (label) " (" (values.iter().sum::<i64>()) ")"
                }
            }
        }
    }
}

/// The task types with items waiting, running or failed, each count a link to its list.
fn by_type(s: &EngineSummary, scope: &[(&str, String)]) -> Markup {
    html! {
        @if s.tasks_by_type.is_empty() {
            div.empty { "No task is waiting, running or failed." }
        } @else {
            table #by-type {
                thead { tr { th { "task type" } th { "status" } th { "count" } } }
                tbody {
                    @for (task_type, status, n) in &s.tasks_by_type {
                        @let pairs = with(scope, [("task_type", task_type), ("status", status.as_str())]);
                        tr {
                            td { (task_type) }
                            td { (badge(status.as_str())) }
                            td.num { a href=(link("/admin/tasks", &pairs)) { (n) } }
                        }
                    }
                }
            }
        }
    }
}

/// A row's count of each priority, then their total.
fn priority_cells(counts: &PriorityCounts) -> Markup {
    html! {
        @for p in Priority::ALL {
            td.num { (counts.get(p)) }
        }
        td.num { (counts.total()) }
    }
}

/// How the backlog names an institution: its name, else its id.
fn backlog_name(b: &InstitutionBacklog) -> String {
    match (&b.name, b.institution_id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => uuid(id.0),
        (None, None) => "(no institution)".into(),
    }
}

/// The tasks due and waiting for a worker: a row per institution listed, then the totals.
fn due_backlog(b: &DueBacklog) -> Markup {
    let listed: i64 = b.institutions.iter().map(|i| i.due.total()).sum();
    html! {
        @if b.total.total() == 0 {
            (none_yet("No task is due and waiting."))
        } @else {
            table.list #due-backlog {
                caption.visually-hidden { "Tasks due and waiting for a worker, by institution and priority" }
                thead { tr {
                    th scope="col" { "institution" }
                    @for p in Priority::ALL { th.num scope="col" { (p.as_str()) } }
                    th.num scope="col" { "total" }
                } }
                tbody {
                    @for i in &b.institutions {
                        tr { th scope="row" { (backlog_name(i)) } (priority_cells(&i.due)) }
                    }
                }
                tfoot {
                    tr { th scope="row" { "all institutions" } (priority_cells(&b.total)) }
                }
            }
            @if listed < b.total.total() {
                p.muted {
                    "The " (b.institutions.len()) " institutions with the most due tasks; \
                     the totals count every institution."
                }
            }
        }
    }
}

fn filters(f: &FilterValues, names: &Names, who: &OperatorSession) -> Markup {
    html! {
        form.filters method="get" action="/admin" {
            (institution_select(f, names, who))
            (input("event_type", "Event type", &f.event_type, Field::Text(18)))
            (input("task_type", "Task type", &f.task_type, Field::Text(18)))
            (input("from", "Counted from (UTC)", &f.from, Field::Time))
            (input("to", "Counted to (UTC)", &f.to, Field::Time))
            button.primary type="submit" { "Filter" }
            a href="/admin" { "Clear" }
        }
    }
}

fn cards(f: &FilterValues, s: &EngineSummary, scope: &[(&str, String)]) -> Markup {
    let event_scope = with(
        scope,
        [("event_type", f.event_type.as_deref().unwrap_or_default())],
    );
    let task_scope = with(
        scope,
        [("task_type", f.task_type.as_deref().unwrap_or_default())],
    );
    html! {
        div.cards {
            div.card #event-counts {
                h2 { "Events by status" }
                div.counts { (counts("/admin/events", &s.events_by_status, &event_scope)) }
            }
            div.card #task-counts {
                h2 { "Tasks by status" }
                div.counts { (counts("/admin/tasks", &s.tasks_by_status, &task_scope)) }
            }
            div.card {
                h2 { "Failure rate, tasks of the last hour" }
                div.big #failure-rate { (format!("{:.1}%", s.failure_rate * 100.0)) }
            }
            div.card {
                h2 { "Oldest waiting" }
                div { "event: " strong #oldest-event { (age(s.oldest_pending_event_age_s)) } }
                div { "task: " strong #oldest-task { (age(s.oldest_pending_task_age_s)) } }
            }
        }
    }
}

fn charts(s: &EngineSummary) -> Markup {
    let minute =
        |pick: fn(&MinuteCounts) -> i64| -> Vec<i64> { s.per_minute.iter().map(pick).collect() };
    html! {
        div.cards.charts {
            (chart("Events recorded per minute", &[("bar-events", "events", minute(|m| m.events))]))
            (chart(
                "Tasks created per minute, by outcome",
                &[
                    ("bar-ok", "succeeded", minute(|m| m.tasks_succeeded)),
                    ("bar-failed", "failed", minute(|m| m.tasks_failed)),
                ],
            ))
        }
    }
}

/// The overview page body.
pub fn overview(
    f: &FilterValues,
    s: &EngineSummary,
    types: &[TypeStats],
    names: &Names,
    who: &OperatorSession,
) -> Markup {
    let scope: Vec<(&str, String)> = vec![
        (
            "institution_id",
            f.institution_id.clone().unwrap_or_default(),
        ),
        ("from", f.from.clone().unwrap_or_default()),
        ("to", f.to.clone().unwrap_or_default()),
    ];
    html! {
        h1 { "Overview" }
        (filters(f, names, who))
        div #live {
            (cards(f, s, &scope))
            (charts(s))
            h2 { "Due backlog" }
            (due_backlog(&s.due_backlog))
            h2 { "Tasks needing attention, by type" }
            (by_type(s, &scope))
            h2 { "Latency and failures by task type, last hour" }
            (type_stats(types))
            p.muted {
                "≈: the planner's estimate, used for the bulk status of a large table instead \
                 of counting every row."
            }
        }
    }
}

/// Per task type, the last hour's outcomes and handler latency (as `campus status` shows).
fn type_stats(types: &[TypeStats]) -> Markup {
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
    html! {
        @if types.is_empty() {
            (none_yet("No task in the last hour."))
        } @else {
            table.list #type-stats {
                thead { tr {
                    th { "task type" } th.num { "succeeded" } th.num { "failed" }
                    th.num { "failure rate" } th.num { "p50 (ms)" } th.num { "p95 (ms)" }
                } }
                tbody {
                    @for t in types {
                        tr {
                            td { (t.task_type) }
                            td.num { (t.succeeded) }
                            td.num { (t.failed) }
                            td.num { (format!("{:.1} %", t.failure_rate() * 100.0)) }
                            td.num { (ms(t.p50_ms)) }
                            td.num { (ms(t.p95_ms)) }
                        }
                    }
                }
            }
        }
    }
}
