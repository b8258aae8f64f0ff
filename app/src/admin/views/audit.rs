//! The audit trail of one entity: the events it recorded, live and archived, oldest first,
//! with who caused each and its correlation id.

use super::parts::{link, link_id, none_yet, time, uuid};
use campus_ports::EventView;
use maud::{html, Markup};

/// The link to an entity's audit trail.
pub fn audit_link(aggregate_type: &str, aggregate_id: u128) -> String {
    format!("/admin/audit/{aggregate_type}/{}", uuid(aggregate_id))
}

/// Who caused an event: a user (with a link to their own trail) or the system.
pub(super) fn actor(actor_id: Option<campus_core::ids::UserId>) -> Markup {
    html! {
        @match actor_id {
            Some(a) => a href=(audit_link("User", a.0)) { code { (uuid(a.0)) } },
            None => "system",
        }
    }
}

/// The audit trail page body (`trail` oldest first, at most one page of it).
pub fn audit_trail(
    aggregate_type: &str,
    aggregate_id: u128,
    trail: &[EventView],
    more: bool,
) -> Markup {
    html! {
        h1 { "Audit trail of " (aggregate_type) " " code { (uuid(aggregate_id)) } }
        p.muted { "Every event this entity recorded, live and archived, oldest first. Reprocessed copies are left out: they repeat their original." }
        @if trail.is_empty() {
            (none_yet("No events recorded for this entity (in your scope)."))
        } @else {
            table.list #trail {
                thead { tr {
                    th { "occurred (UTC)" } th { "type" } th { "caused by" }
                    th { "correlation id" } th { "payload" } th { "event" }
                } }
                tbody {
                    @for e in trail {
                        tr {
                            td { (time(e.occurred_at)) }
                            td { (e.event_type) }
                            td { (actor(e.actor_id)) }
                            td {
                                @match &e.correlation_id {
                                    // Live and archived: the trail's events may be in either.
                                    Some(c) => a href=(link("/admin/events", &[("correlation_id", c.clone()), ("archived", "all".into())])) { (c) },
                                    None => "—",
                                }
                            }
                            td { code { (e.payload) } }
                            td { (link_id("events", e.id.0)) }
                        }
                    }
                }
            }
            @if more {
                p.muted { "Only the first " (trail.len()) " events are shown; GET /audit/" (aggregate_type) "/" (uuid(aggregate_id)) "?after=… pages on." }
            }
        }
    }
}
