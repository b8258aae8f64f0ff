//! The page of one task: what it is, where it came from, its failed attempts, its copies and
//! its payload, with the button that cancels it before it starts and the one that reprocesses
//! it once it is finished.

use super::parts::{
    badge, cancel_form, correlation_links, facts, institution_cell, link_id, none_yet, opt_link_id,
    opt_time, pretty_json, reprocess_form, time, uuid, Names,
};
use super::tables::{errors_table, task_table};
use campus_core::engine::TaskStatus;
use campus_ports::{OperatorSession, TaskView};
use maud::{html, Markup};

fn task_facts(t: &TaskView, names: &Names) -> Markup {
    let duration = t
        .duration_ms
        .map_or_else(|| "—".to_string(), |d| format!("{d:.1} ms"));
    let mut items = vec![
        ("Status", badge(t.status.as_str())),
        ("Type", html! { (t.task_type) }),
        ("Handler", html! { (t.handler.as_deref().unwrap_or("—")) }),
        ("Institution", institution_cell(names, t.institution_id)),
        (
            "Origin event",
            opt_link_id("events", t.event_id.map(|e| e.0)),
        ),
        ("Correlation id", correlation_links(&t.correlation_id)),
        ("Attempt", html! { (t.attempt) " of " (t.max_attempts) }),
        ("Run at", html! { (time(t.run_at)) }),
        ("Created", html! { (time(t.created_at)) }),
        ("Started", html! { (opt_time(t.started_at)) }),
        ("Finished", html! { (opt_time(t.finished_at)) }),
        ("Duration", html! { (duration) }),
        ("Lineage", link_id("tasks", t.lineage_id.0)),
        (
            "Reprocessed from",
            opt_link_id("tasks", t.reprocessed_from.map(|r| r.0)),
        ),
    ];
    if t.reprocess_request_id.is_some() {
        items.push((
            "Reprocessed by request",
            correlation_links(&t.reprocess_request_id),
        ));
    }
    facts(&items)
}

/// The task detail page body.
pub fn task_detail(
    t: &TaskView,
    copies: &[TaskView],
    names: &Names,
    who: &OperatorSession,
) -> Markup {
    let id = uuid(t.id.0);
    let finished = t.status.can_reprocess();
    html! {
        h1 { "Task " code { (id) } }
        div #live {
            p { (badge(t.status.as_str())) " " strong { (t.task_type) } }
            @if finished {
                (reprocess_form(&format!("/admin/tasks/{id}/reprocess"), &who.csrf_token, "task"))
            } @else if matches!(t.status, TaskStatus::Pending | TaskStatus::Retrying) {
                (cancel_form(&format!("/admin/tasks/{id}/cancel"), &who.csrf_token))
            } @else {
                (none_yet("It can be reprocessed once it is finished."))
            }
            (task_facts(t, names))
            h2 { "Attempts that failed" }
            (errors_table(&t.errors))
            h2 { "Copies" }
            @if copies.is_empty() {
                (none_yet("Not reprocessed."))
            } @else {
                (task_table("copies", copies, names))
            }
            h2 { "Payload" }
            (pretty_json(&t.payload))
        }
    }
}
