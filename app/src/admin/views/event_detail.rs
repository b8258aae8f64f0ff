//! The page of one event: what it is, the tasks it produced, its failed attempts, its copies
//! and its payload, with the button that reprocesses it once it is dispatched or dead.

use super::audit::{actor, audit_link};
use super::parts::{
    badge, correlation_links, facts, institution_cell, none_yet, opt_link_id, opt_time,
    pretty_json, reprocess_form, time, uuid, Names,
};
use super::tables::{errors_table, event_table, task_table};
use campus_ports::{EventDetail, EventView, OperatorSession};
use maud::{html, Markup};

fn event_facts(e: &EventView, names: &Names) -> Markup {
    let mut items = vec![
        ("Status", badge(e.status.as_str())),
        ("Type", html! { (e.event_type) }),
        (
            "Aggregate",
            html! {
                (e.aggregate_type) " " code { (uuid(e.aggregate_id)) } " "
                a #audit-trail .inline href=(audit_link(&e.aggregate_type, e.aggregate_id)) { "audit trail" }
            },
        ),
        ("Caused by", actor(e.actor_id)),
        ("Institution", institution_cell(names, e.institution_id)),
        ("Correlation id", correlation_links(&e.correlation_id)),
        ("Occurred", html! { (time(e.occurred_at)) }),
        ("Dispatched", html! { (opt_time(e.dispatched_at)) }),
        ("Attempts", html! { (e.attempts) }),
        (
            "Reprocessed from",
            opt_link_id("events", e.reprocessed_from.map(|r| r.0)),
        ),
    ];
    if e.reprocess_request_id.is_some() {
        items.push((
            "Reprocessed by request",
            correlation_links(&e.reprocess_request_id),
        ));
    }
    facts(&items)
}

/// The event detail page body.
pub fn event_detail(
    d: &EventDetail,
    copies: &[EventView],
    names: &Names,
    who: &OperatorSession,
) -> Markup {
    let e = &d.event;
    let id = uuid(e.id.0);
    let settled = e.status.can_reprocess();
    html! {
        h1 { "Event " code { (id) } }
        div #live {
            p { (badge(e.status.as_str())) " " strong { (e.event_type) } }
            @if settled {
                (reprocess_form(&format!("/admin/events/{id}/reprocess"), &who.csrf_token, "event"))
            } @else {
                (none_yet("It can be reprocessed once it is dispatched or dead."))
            }
            (event_facts(e, names))
            h2 { "Tasks it produced" }
            @if d.tasks.is_empty() {
                (none_yet("No task (yet)."))
            } @else {
                (task_table("produced", &d.tasks, names))
            }
            h2 { "Attempts that failed" }
            (errors_table(&e.errors))
            h2 { "Copies" }
            @if copies.is_empty() {
                (none_yet("Not reprocessed."))
            } @else {
                (event_table("copies", copies, names))
            }
            h2 { "Payload" }
            (pretty_json(&e.payload))
        }
    }
}
