//! Small pieces every page uses: status badges, times, ids, institution names, links with a
//! query string, pretty JSON.

use campus_core::ids::InstitutionId;
use campus_core::Timestamp;
use maud::{html, Markup};
use std::collections::HashMap;

/// Institution names by id, for display.
pub type Names = HashMap<InstitutionId, String>;

/// The status as a coloured badge (the status is also its CSS class).
pub(super) fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// A time as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(super) fn time(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A time, or a dash when there is none.
pub(super) fn opt_time(t: Option<Timestamp>) -> String {
    t.map(time).unwrap_or_else(|| "—".into())
}

/// The text form of an id.
pub fn uuid(v: u128) -> String {
    uuid::Uuid::from_u128(v).to_string()
}

/// A short, still distinctive form of an id (its random tail) with the whole id on hover.
pub(super) fn short_id(v: u128) -> Markup {
    let full = uuid(v);
    html! { code title=(full) { "…" (&full[full.len() - 12..]) } }
}

/// A link to the page of an item (`kind` is `events` or `tasks`), showing its whole id.
pub(super) fn link_id(kind: &str, id: u128) -> Markup {
    let id = uuid(id);
    html! { a href={ "/admin/" (kind) "/" (id) } { code { (id) } } }
}

/// `link_id` of an optional item, or a dash.
pub(super) fn opt_link_id(kind: &str, id: Option<u128>) -> Markup {
    html! {
        @match id {
            Some(id) => (link_id(kind, id)),
            None => "—",
        }
    }
}

pub(super) fn institution_name(names: &Names, id: InstitutionId) -> String {
    names.get(&id).cloned().unwrap_or_else(|| uuid(id.0))
}

/// The institution's name, or a muted dash for items of no institution.
pub(super) fn institution_cell(names: &Names, id: Option<InstitutionId>) -> Markup {
    html! {
        @match id {
            Some(i) => (institution_name(names, i)),
            None => span.muted { "—" },
        }
    }
}

/// `path?k=v&…` from the non-empty pairs, form-urlencoded.
pub fn link(path: &str, pairs: &[(&str, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()));
    match query.finish() {
        q if q.is_empty() => path.to_string(),
        q => format!("{path}?{q}"),
    }
}

/// A JSON text indented for reading (as it is when it is not JSON).
pub(super) fn pretty_json(raw: &str) -> Markup {
    let pretty = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_string());
    html! { pre.json { (pretty) } }
}

/// The button that reprocesses the item shown (`what`: "task" or "event"), posted in the
/// background by the page's script.
pub(super) fn reprocess_form(action: &str, csrf: &str, what: &str) -> Markup {
    html! {
        form #reprocess .actions method="post" action=(action) data-async {
            input type="hidden" name="csrf" value=(csrf);
            button.primary type="submit" { "Reprocess this " (what) }
            span.muted { "inserts a copy that runs again; this " (what) " stays as it is" }
        }
    }
}

/// The button that cancels a task that has not started.
pub(super) fn cancel_form(action: &str, csrf: &str) -> Markup {
    html! {
        form #cancel .actions method="post" action=(action) data-async {
            input type="hidden" name="csrf" value=(csrf);
            button.danger type="submit" { "Cancel this task" }
            span.muted { "it will not run; reprocessing it later runs a copy" }
        }
    }
}

/// A muted sentence in place of something there is none of.
pub(super) fn none_yet(text: &str) -> Markup {
    html! { p.muted { (text) } }
}

/// A list of facts about an item: (term, description) pairs.
pub(super) fn facts(items: &[(&str, Markup)]) -> Markup {
    html! {
        dl.facts {
            @for (term, description) in items {
                dt { (term) }
                dd { (description) }
            }
        }
    }
}

/// A correlation id and links to everything that carries it — the events and the tasks, live
/// and archived (the lists' filter also finds the copies an operator's request with this id
/// made) — or a dash.
pub(super) fn correlation_links(correlation: &Option<String>) -> Markup {
    let everything = |list: &str, c: &str| {
        link(
            list,
            &[
                ("correlation_id", c.to_string()),
                ("archived", "all".into()),
            ],
        )
    };
    html! {
        @match correlation {
            Some(c) => {
                code { (c) } " — "
                a.inline href=(everything("/admin/events", c)) { "its events" }
                " and "
                a.inline href=(everything("/admin/tasks", c)) { "its tasks" }
                ", live and archived"
            },
            None => "—",
        }
    }
}
