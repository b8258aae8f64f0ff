//! The filter forms of the lists and the overview (their values as typed, kept in the URL)
//! and the pager of the lists.

use super::parts::{link, uuid, Names};
use campus_core::engine::{EventStatus, TaskStatus};
use campus_ports::{ListStatus, OperatorSession};
use maud::{html, Markup};

/// The filter form's current values (as typed), shared by both lists and the overview.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct FilterValues {
    pub archived: Option<String>,
    pub institution_id: Option<String>,
    pub event_type: Option<String>,
    pub task_type: Option<String>,
    pub status: Option<String>,
    pub event_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub correlation_id: Option<String>,
    pub has_errors: Option<String>,
    pub q: Option<String>,
    pub before: Option<String>,
    pub limit: Option<String>,
}

impl FilterValues {
    fn get(v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }

    /// The filters as query pairs (without the page position).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("archived", Self::get(&self.archived)),
            ("institution_id", Self::get(&self.institution_id)),
            ("event_type", Self::get(&self.event_type)),
            ("task_type", Self::get(&self.task_type)),
            ("status", Self::get(&self.status)),
            ("event_id", Self::get(&self.event_id)),
            ("from", Self::get(&self.from)),
            ("to", Self::get(&self.to)),
            ("correlation_id", Self::get(&self.correlation_id)),
            ("has_errors", Self::get(&self.has_errors)),
            ("q", Self::get(&self.q)),
            ("limit", Self::get(&self.limit)),
        ]
    }
}

/// What kind of input a filter field is.
#[derive(Clone, Copy)]
pub(super) enum Field {
    /// Free text, `size` characters wide.
    Text(u32),
    /// A UTC time to the second.
    Time,
    /// Text searched in payloads (slow on large tables, which its tooltip says).
    Search,
}

/// A labelled input named `name` showing `value`.
pub(super) fn input(name: &str, label: &str, value: &Option<String>, field: Field) -> Markup {
    let value = value.as_deref().unwrap_or_default();
    html! {
        label {
            (label)
            @match field {
                Field::Text(size) => input name=(name) value=(value) size=(size);,
                Field::Time => input name=(name) value=(value) type="datetime-local" step="1";,
                Field::Search => input name=(name) value=(value) size="16" type="search"
                    title="Reads every row in range: on a large table, add a time range";,
            }
        }
    }
}

/// A labelled choice among `options` (value, text), with `value` selected.
fn select(name: &str, label: &str, value: &Option<String>, options: &[(String, String)]) -> Markup {
    let current = value.as_deref().unwrap_or_default();
    html! {
        label {
            (label)
            select name=(name) {
                @for (v, text) in options {
                    option value=(v) selected[v == current] { (text) }
                }
            }
        }
    }
}

/// The institution choice of an Adm user (an Academic user sees only their own: none).
pub(super) fn institution_select(f: &FilterValues, names: &Names, who: &OperatorSession) -> Markup {
    if who.institution_id.is_some() {
        return html! {};
    }
    let mut options: Vec<(String, String)> = names
        .iter()
        .map(|(id, name)| (uuid(id.0), name.clone()))
        .collect();
    options.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    options.insert(0, (String::new(), "all".into()));
    select("institution_id", "Institution", &f.institution_id, &options)
}

/// "any", then every status of `S`.
fn status_options<S: ListStatus>() -> Vec<(String, String)> {
    std::iter::once((String::new(), "any".to_string()))
        .chain(
            S::ALL
                .iter()
                .map(|s| (s.as_str().into(), s.as_str().into())),
        )
        .collect()
}

/// Which list a filter form is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
    Events,
    Tasks,
}

/// The filter form of a list.
pub(super) fn list_filters(
    kind: ListKind,
    f: &FilterValues,
    names: &Names,
    who: &OperatorSession,
) -> Markup {
    let (action, type_field, statuses) = match kind {
        ListKind::Events => (
            "/admin/events",
            input("event_type", "Event type", &f.event_type, Field::Text(18)),
            status_options::<EventStatus>(),
        ),
        ListKind::Tasks => (
            "/admin/tasks",
            input("task_type", "Task type", &f.task_type, Field::Text(18)),
            status_options::<TaskStatus>(),
        ),
    };
    let errors = [
        (String::new(), "any".into()),
        ("true".into(), "with errors".into()),
        ("false".into(), "without errors".into()),
    ];
    let rows = [
        (String::new(), "live".into()),
        ("archived".into(), "archived".into()),
        ("all".into(), "live and archived".into()),
    ];
    html! {
        form.filters method="get" action=(action) {
            (institution_select(f, names, who))
            (type_field)
            (select("status", "Status", &f.status, &statuses))
            @if kind == ListKind::Tasks {
                (input("event_id", "Origin event", &f.event_id, Field::Text(12)))
            }
            (input("from", "From (UTC)", &f.from, Field::Time))
            (input("to", "To (UTC)", &f.to, Field::Time))
            (input("correlation_id", "Correlation id", &f.correlation_id, Field::Text(14)))
            (select("has_errors", "Errors", &f.has_errors, &errors))
            (select("archived", "Rows", &f.archived, &rows))
            (input("q", "Text in payload", &f.q, Field::Search))
            button.primary type="submit" { "Filter" }
            a href=(action) { "Clear" }
        }
    }
}

/// Links to the newest page (when not on it) and to the next, older one.
pub(super) fn pager(path: &str, f: &FilterValues, next_before: Option<u128>) -> Markup {
    let older = next_before.map(|b| {
        let mut pairs = f.pairs();
        pairs.push(("before", uuid(b)));
        link(path, &pairs)
    });
    html! {
        div.pager {
            @if f.before.as_deref().is_some_and(|b| !b.is_empty()) {
                a href=(link(path, &f.pairs())) { "« Newest" }
            }
            @match older {
                Some(href) => a rel="next" href=(href) { "Older »" },
                None => span { "End of the list" },
            }
        }
    }
}
