//! The list of events: filters, the table (or why it is empty) and the pager.

use super::filters::{list_filters, pager, FilterValues, ListKind};
use super::parts::Names;
use super::tables::event_table;
use campus_ports::{EventView, OperatorSession};
use maud::{html, Markup};

/// The event list page body.
pub fn event_list(
    f: &FilterValues,
    events: &[EventView],
    next_before: Option<u128>,
    names: &Names,
    who: &OperatorSession,
) -> Markup {
    html! {
        h1 { "Events" }
        (list_filters(ListKind::Events, f, names, who))
        div #live {
            @if events.is_empty() {
                div.empty { "No event matches these filters." }
            } @else {
                (event_table("events", events, names))
            }
            (pager("/admin/events", f, next_before))
        }
    }
}
