//! The tables of events, tasks and failed attempts, shared by the lists and the detail pages.
//! Rows carry `data-id` (and tasks `data-status`) for the page's script and the tests.

use super::parts::{badge, institution_cell, short_id, time, uuid, Names};
use campus_ports::{AttemptError, EventView, TaskView};
use maud::{html, Markup};

/// The last failed attempt's message as a cell (empty when none failed).
fn last_error(errors: &[AttemptError]) -> Markup {
    html! {
        @match errors.last() {
            Some(e) => td.error title=(e.message) { (e.message) },
            None => td {},
        }
    }
}

/// Every failed attempt, oldest first.
pub(super) fn errors_table(errors: &[AttemptError]) -> Markup {
    html! {
        @if errors.is_empty() {
            p.muted { "No failed attempt." }
        } @else {
            table.attempts {
                thead { tr { th { "attempt" } th { "at" } th { "error" } } }
                tbody {
                    @for e in errors {
                        tr { td.num { (e.attempt) } td { (e.at) } td { (e.message) } }
                    }
                }
            }
        }
    }
}

fn head(columns: [&str; 8]) -> Markup {
    html! { thead { tr { @for c in columns { th { (c) } } } } }
}

fn event_row(e: &EventView, names: &Names) -> Markup {
    let id = uuid(e.id.0);
    let href = format!("/admin/events/{id}");
    html! {
        tr data-id=(id) {
            td { (badge(e.status.as_str())) }
            td { a href=(href) { (e.event_type) } }
            td { (institution_cell(names, e.institution_id)) }
            td { (e.aggregate_type) }
            td { (time(e.occurred_at)) }
            td.num { (e.attempts) }
            (last_error(&e.errors))
            td { a href=(href) { (short_id(e.id.0)) } }
        }
    }
}

fn task_row(t: &TaskView, names: &Names) -> Markup {
    let id = uuid(t.id.0);
    let href = format!("/admin/tasks/{id}");
    html! {
        tr data-id=(id) data-status=(t.status.as_str()) {
            td { (badge(t.status.as_str())) }
            td { a href=(href) { (t.task_type) } }
            td { (institution_cell(names, t.institution_id)) }
            td.num { (t.attempt) "/" (t.max_attempts) }
            td { (time(t.created_at)) }
            td.num {
                @if let Some(d) = t.duration_ms { (format!("{d:.1} ms")) }
            }
            (last_error(&t.errors))
            td {
                a href=(href) { (short_id(t.id.0)) }
                @if t.reprocessed_from.is_some() {
                    " " span.muted title="a reprocessed copy" { "copy" }
                }
            }
        }
    }
}

/// A table of events with the HTML id `id`.
pub(super) fn event_table(id: &str, events: &[EventView], names: &Names) -> Markup {
    let columns = [
        "status",
        "type",
        "institution",
        "aggregate",
        "occurred (UTC)",
        "attempts",
        "last error",
        "id",
    ];
    html! {
        table.list id=(id) {
            (head(columns))
            tbody { @for e in events { (event_row(e, names)) } }
        }
    }
}

/// A table of tasks with the HTML id `id`.
pub(super) fn task_table(id: &str, tasks: &[TaskView], names: &Names) -> Markup {
    let columns = [
        "status",
        "type",
        "institution",
        "attempt",
        "created (UTC)",
        "duration",
        "last error",
        "id",
    ];
    html! {
        table.list id=(id) {
            (head(columns))
            tbody { @for t in tasks { (task_row(t, names)) } }
        }
    }
}
