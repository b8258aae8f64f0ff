//! HTML of the admin screen: the layout and every page, rendered on the server from the
//! operators' read models. Everything a page shows that can change lives in `#live`, which
//! the page's script swaps in place when the engine reports changes.

use crate::web::page::escape;
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::ids::InstitutionId;
use campus_core::Timestamp;
use campus_ports::{
    AttemptError, EngineSummary, EventDetail, EventView, ListStatus, OperatorSession, StatusCount,
    TaskView,
};
use std::collections::HashMap;
use std::fmt::Write;

/// Institution names by id, for display.
pub type Names = HashMap<InstitutionId, String>;

/// Which top-level section a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Events,
    Tasks,
}

/// A message at the top of a page.
pub enum Flash {
    None,
    Done(String),
    Error(String),
}

/// The page around `body`: header, navigation, the operator, the flash.
pub fn layout(
    title: &str,
    section: Section,
    who: &OperatorSession,
    names: &Names,
    flash: &Flash,
    body: &str,
) -> String {
    let nav = [
        (Section::Overview, "/admin", "Overview"),
        (Section::Events, "/admin/events", "Events"),
        (Section::Tasks, "/admin/tasks", "Tasks"),
    ]
    .iter()
    .map(|(s, href, label)| {
        let current = if *s == section {
            " class=\"current\""
        } else {
            ""
        };
        format!(r#"<a href="{href}"{current}>{label}</a>"#)
    })
    .collect::<String>();
    let scope = match who.institution_id {
        None => "Adm · all institutions".to_string(),
        Some(i) => format!("Academic · {}", escape(&institution_name(names, i))),
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title} · Campus admin</title><link rel="stylesheet" href="/admin/assets/admin.css"><script src="/admin/assets/admin.js" defer></script></head>
<body><header class="top"><a class="brand" href="/admin">Campus admin</a><nav>{nav}</nav>
<span class="who"><span id="live-dot" class="live-dot" title="live updates"></span>{name} · {scope}</span>
<form method="post" action="/admin/logout"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Log out</button></form></header>
<main>{flash}{body}</main></body></html>"#,
        title = escape(title),
        name = escape(&who.name),
        csrf = escape(&who.csrf_token),
        flash = flash_html(flash),
    )
}

fn flash_html(flash: &Flash) -> String {
    match flash {
        Flash::None => r#"<div id="flash"></div>"#.into(),
        Flash::Done(m) => format!(
            r#"<div id="flash" class="flash" role="status">{}</div>"#,
            escape(m)
        ),
        Flash::Error(m) => format!(
            r#"<div id="flash" class="flash error" role="alert">{}</div>"#,
            escape(m)
        ),
    }
}

/// The login page; `error` explains a refused attempt.
pub fn login(csrf: &str, next: &str, email: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="flash error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Log in · Campus admin</title><link rel="stylesheet" href="/admin/assets/admin.css"></head><body>
<form class="login" method="post" action="/admin/login"><h1>Campus admin</h1>
<p class="muted">For Adm users (every institution) and Academic users (their institution).</p>{error}
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="email">E-mail</label><input id="email" name="email" type="email" value="{email}" required autocomplete="username" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required autocomplete="current-password">
<button class="primary" type="submit">Log in</button></form></body></html>"#,
        csrf = escape(csrf),
        next = escape(next),
        email = escape(email),
    )
}

/// A page that only says what went wrong.
pub fn message(title: &str, text: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t} · Campus admin</title>
<link rel="stylesheet" href="/admin/assets/admin.css"></head><body><main><h1>{t}</h1><p>{m}</p>
<p><a href="/admin">Back to the admin screen</a></p></main></body></html>"#,
        t = escape(title),
        m = escape(text)
    )
}

fn badge(status: &str) -> String {
    let s = escape(status);
    format!(r#"<span class="badge {s}">{s}</span>"#)
}

fn time(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map(time).unwrap_or_else(|| "—".into())
}

pub fn uuid(v: u128) -> String {
    uuid::Uuid::from_u128(v).to_string()
}

/// A short, still distinctive form of an id (its random tail) with the whole id on hover.
fn short_id(v: u128) -> String {
    let full = uuid(v);
    format!(
        r#"<code title="{full}">…{}</code>"#,
        &full[full.len() - 12..]
    )
}

fn institution_name(names: &Names, id: InstitutionId) -> String {
    names.get(&id).cloned().unwrap_or_else(|| uuid(id.0))
}

fn institution_cell(names: &Names, id: Option<InstitutionId>) -> String {
    id.map(|i| escape(&institution_name(names, i)))
        .unwrap_or_else(|| r#"<span class="muted">—</span>"#.into())
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

fn pretty_json(raw: &str) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_string());
    format!(r#"<pre class="json">{}</pre>"#, escape(&pretty))
}

fn last_error(errors: &[AttemptError]) -> String {
    errors
        .last()
        .map(|e| {
            format!(
                r#"<td class="error" title="{m}">{m}</td>"#,
                m = escape(&e.message)
            )
        })
        .unwrap_or_else(|| "<td></td>".into())
}

fn errors_table(errors: &[AttemptError]) -> String {
    if errors.is_empty() {
        return r#"<p class="muted">No failed attempt.</p>"#.into();
    }
    let rows: String = errors
        .iter()
        .map(|e| {
            format!(
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                e.attempt,
                escape(&e.at),
                escape(&e.message)
            )
        })
        .collect();
    format!(
        r#"<table class="attempts"><thead><tr><th>attempt</th><th>at</th><th>error</th></tr></thead><tbody>{rows}</tbody></table>"#
    )
}

// ---------------------------------------------------------------------------------------
// Filters

/// The filter form's current values (as typed), shared by both lists and the overview.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct FilterValues {
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

fn input(name: &str, label: &str, value: &Option<String>, extra: &str) -> String {
    format!(
        r#"<label>{label}<input name="{name}" value="{}" {extra}></label>"#,
        escape(value.as_deref().unwrap_or_default())
    )
}

fn select(name: &str, label: &str, value: &Option<String>, options: &[(String, String)]) -> String {
    let current = value.as_deref().unwrap_or_default();
    let opts: String = options
        .iter()
        .map(|(v, text)| {
            let sel = if v == current { " selected" } else { "" };
            format!(
                r#"<option value="{}"{sel}>{}</option>"#,
                escape(v),
                escape(text)
            )
        })
        .collect();
    format!(r#"<label>{label}<select name="{name}">{opts}</select></label>"#)
}

fn institution_select(f: &FilterValues, names: &Names, who: &OperatorSession) -> String {
    if who.institution_id.is_some() {
        return String::new();
    }
    let mut options: Vec<(String, String)> = names
        .iter()
        .map(|(id, name)| (uuid(id.0), name.clone()))
        .collect();
    options.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    options.insert(0, (String::new(), "all".into()));
    select("institution_id", "Institution", &f.institution_id, &options)
}

const TIME_INPUT: &str = "type=\"datetime-local\" step=\"1\"";

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
enum ListKind {
    Events,
    Tasks,
}

fn list_filters(kind: ListKind, f: &FilterValues, names: &Names, who: &OperatorSession) -> String {
    let (action, type_field, statuses) = match kind {
        ListKind::Events => (
            "/admin/events",
            input("event_type", "Event type", &f.event_type, "size=\"18\""),
            status_options::<EventStatus>(),
        ),
        ListKind::Tasks => (
            "/admin/tasks",
            input("task_type", "Task type", &f.task_type, "size=\"18\""),
            status_options::<TaskStatus>(),
        ),
    };
    let event_field = if kind == ListKind::Tasks {
        input("event_id", "Origin event", &f.event_id, "size=\"12\"")
    } else {
        String::new()
    };
    format!(
        r#"<form class="filters" method="get" action="{action}">{inst}{type_field}{status}{event_field}{from}{to}{corr}{errors}{q}
<button class="primary" type="submit">Filter</button><a href="{action}">Clear</a></form>"#,
        inst = institution_select(f, names, who),
        status = select("status", "Status", &f.status, &statuses),
        from = input(
            "from",
            "From (UTC)",
            &f.from,
            TIME_INPUT
        ),
        to = input(
            "to",
            "To (UTC)",
            &f.to,
            TIME_INPUT
        ),
        corr = input(
            "correlation_id",
            "Correlation id",
            &f.correlation_id,
            "size=\"14\""
        ),
        errors = select(
            "has_errors",
            "Errors",
            &f.has_errors,
            &[
                (String::new(), "any".into()),
                ("true".into(), "with errors".into()),
                ("false".into(), "without errors".into()),
            ]
        ),
        q = input(
            "q",
            "Text in payload",
            &f.q,
            "size=\"16\" type=\"search\" title=\"Reads every row in range: on a large table, add a time range\""
        ),
    )
}

fn pager(path: &str, f: &FilterValues, next_before: Option<u128>) -> String {
    let newest = if f.before.as_deref().is_some_and(|b| !b.is_empty()) {
        format!(
            r#"<a href="{}">« Newest</a>"#,
            escape(&link(path, &f.pairs()))
        )
    } else {
        String::new()
    };
    let older = match next_before {
        Some(b) => {
            let mut pairs = f.pairs();
            pairs.push(("before", uuid(b)));
            format!(
                r#"<a rel="next" href="{}">Older »</a>"#,
                escape(&link(path, &pairs))
            )
        }
        None => r#"<span>End of the list</span>"#.into(),
    };
    format!(r#"<div class="pager">{newest}{older}</div>"#)
}

// ---------------------------------------------------------------------------------------
// Lists

fn event_rows(events: &[EventView], names: &Names) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                r#"<tr data-id="{id}"><td>{badge}</td><td><a href="/admin/events/{id}">{type_}</a></td><td>{inst}</td><td>{agg}</td><td>{at}</td><td class="num">{attempts}</td>{err}<td><a href="/admin/events/{id}">{short}</a></td></tr>"#,
                id = uuid(e.id.0),
                badge = badge(e.status.as_str()),
                type_ = escape(&e.event_type),
                inst = institution_cell(names, e.institution_id),
                agg = escape(&e.aggregate_type),
                at = time(e.occurred_at),
                attempts = e.attempts,
                err = last_error(&e.errors),
                short = short_id(e.id.0),
            )
        })
        .collect()
}

fn task_rows(tasks: &[TaskView], names: &Names) -> String {
    tasks
        .iter()
        .map(|t| {
            format!(
                r#"<tr data-id="{id}" data-status="{status}"><td>{badge}</td><td><a href="/admin/tasks/{id}">{type_}</a></td><td>{inst}</td><td class="num">{attempt}/{max}</td><td>{created}</td><td class="num">{duration}</td>{err}<td><a href="/admin/tasks/{id}">{short}</a>{copy}</td></tr>"#,
                id = uuid(t.id.0),
                status = t.status.as_str(),
                badge = badge(t.status.as_str()),
                type_ = escape(&t.task_type),
                inst = institution_cell(names, t.institution_id),
                attempt = t.attempt,
                max = t.max_attempts,
                created = time(t.created_at),
                duration = t
                    .duration_ms
                    .map(|d| format!("{d:.1} ms"))
                    .unwrap_or_default(),
                err = last_error(&t.errors),
                short = short_id(t.id.0),
                copy = if t.reprocessed_from.is_some() {
                    r#" <span class="muted" title="a reprocessed copy">copy</span>"#
                } else {
                    ""
                },
            )
        })
        .collect()
}

const TASK_HEAD: &str = "<tr><th>status</th><th>type</th><th>institution</th><th>attempt</th><th>created (UTC)</th><th>duration</th><th>last error</th><th>id</th></tr>";
const EVENT_HEAD: &str = "<tr><th>status</th><th>type</th><th>institution</th><th>aggregate</th><th>occurred (UTC)</th><th>attempts</th><th>last error</th><th>id</th></tr>";

/// A table of tasks with the HTML id `id`.
fn task_table(id: &str, tasks: &[TaskView], names: &Names) -> String {
    format!(
        r#"<table class="list" id="{id}"><thead>{TASK_HEAD}</thead><tbody>{}</tbody></table>"#,
        task_rows(tasks, names)
    )
}

/// A table of events with the HTML id `id`.
fn event_table(id: &str, events: &[EventView], names: &Names) -> String {
    format!(
        r#"<table class="list" id="{id}"><thead>{EVENT_HEAD}</thead><tbody>{}</tbody></table>"#,
        event_rows(events, names)
    )
}

/// The event list page body.
pub fn event_list(
    f: &FilterValues,
    events: &[EventView],
    next_before: Option<u128>,
    names: &Names,
    who: &OperatorSession,
) -> String {
    let table = if events.is_empty() {
        r#"<div class="empty">No event matches these filters.</div>"#.to_string()
    } else {
        event_table("events", events, names)
    };
    format!(
        r#"<h1>Events</h1>{filters}<div id="live">{table}{pager}</div>"#,
        filters = list_filters(ListKind::Events, f, names, who),
        pager = pager("/admin/events", f, next_before),
    )
}

/// The task list page body, with the bulk reprocess form.
pub fn task_list(
    f: &FilterValues,
    tasks: &[TaskView],
    next_before: Option<u128>,
    names: &Names,
    who: &OperatorSession,
    bulk_limit: u32,
) -> String {
    let table = if tasks.is_empty() {
        r#"<div class="empty">No task matches these filters.</div>"#.to_string()
    } else {
        task_table("tasks", tasks, names)
    };
    let status = f.status.as_deref().unwrap_or_default();
    let bulk = if status.is_empty() || status == "dead" {
        let hidden: String = f
            .pairs()
            .iter()
            .filter(|(k, v)| !v.is_empty() && !matches!(*k, "status" | "limit" | "has_errors"))
            .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
            .collect();
        format!(
            r#"<details class="bulk"><summary>Reprocess the dead tasks matching these filters…</summary>
<form method="post" action="/admin/tasks/reprocess" id="bulk-reprocess"><input type="hidden" name="csrf" value="{csrf}">{hidden}
<p>Each dead task matching the filters above gets a new copy that runs again (oldest first; a task whose copy is still waiting is skipped). The originals never change.</p>
<p class="actions"><label>At most <input name="limit" type="number" min="1" max="{bulk_limit}" value="100"> copies (up to {bulk_limit})</label>
<label><input type="checkbox" name="confirm" value="yes" required> I want to reprocess them</label>
<button class="danger" type="submit">Reprocess dead tasks</button></p></form></details>"#,
            csrf = escape(&who.csrf_token),
        )
    } else {
        String::new()
    };
    format!(
        r#"<h1>Tasks</h1>{filters}{bulk}<div id="live">{table}{pager}</div>"#,
        filters = list_filters(ListKind::Tasks, f, names, who),
        pager = pager("/admin/tasks", f, next_before),
    )
}

// ---------------------------------------------------------------------------------------
// Details

fn reprocess_form(action: &str, who: &OperatorSession, what: &str) -> String {
    format!(
        r#"<form method="post" action="{action}" data-async class="actions" id="reprocess"><input type="hidden" name="csrf" value="{csrf}">
<button class="primary" type="submit">Reprocess this {what}</button><span class="muted">inserts a copy that runs again; this {what} stays as it is</span></form>"#,
        csrf = escape(&who.csrf_token),
    )
}

fn link_id(kind: &str, id: u128) -> String {
    format!(
        r#"<a href="/admin/{kind}/{id}"><code>{id}</code></a>"#,
        id = uuid(id)
    )
}

const NOT_REPROCESSED: &str = r#"<p class="muted">Not reprocessed.</p>"#;

/// The task detail page body.
pub fn task_detail(
    t: &TaskView,
    copies: &[TaskView],
    names: &Names,
    who: &OperatorSession,
) -> String {
    let id = uuid(t.id.0);
    let reprocess = if t.status.can_reprocess() {
        reprocess_form(&format!("/admin/tasks/{id}/reprocess"), who, "task")
    } else {
        r#"<p class="muted">It can be reprocessed once it is finished.</p>"#.into()
    };
    let correlation = t
        .correlation_id
        .as_ref()
        .map(|c| {
            format!(
                r#"<a href="{}">{}</a>"#,
                escape(&link("/admin/tasks", &[("correlation_id", c.clone())])),
                escape(c)
            )
        })
        .unwrap_or_else(|| "—".into());
    format!(
        r#"<h1>Task <code>{id}</code></h1><div id="live"><p>{badge} <strong>{type_}</strong></p>{reprocess}
<dl class="facts"><dt>Status</dt><dd>{badge}</dd><dt>Type</dt><dd>{type_}</dd><dt>Handler</dt><dd>{handler}</dd>
<dt>Institution</dt><dd>{inst}</dd><dt>Origin event</dt><dd>{event}</dd><dt>Correlation id</dt><dd>{correlation}</dd>
<dt>Attempt</dt><dd>{attempt} of {max}</dd><dt>Run at</dt><dd>{run_at}</dd><dt>Created</dt><dd>{created}</dd>
<dt>Started</dt><dd>{started}</dd><dt>Finished</dt><dd>{finished}</dd><dt>Duration</dt><dd>{duration}</dd>
<dt>Lineage</dt><dd>{lineage}</dd><dt>Reprocessed from</dt><dd>{from}</dd></dl>
<h2>Attempts that failed</h2>{errors}<h2>Copies</h2>{copies}<h2>Payload</h2>{payload}</div>"#,
        badge = badge(t.status.as_str()),
        type_ = escape(&t.task_type),
        handler = escape(t.handler.as_deref().unwrap_or("—")),
        inst = institution_cell(names, t.institution_id),
        event = t
            .event_id
            .map(|e| link_id("events", e.0))
            .unwrap_or_else(|| "—".into()),
        attempt = t.attempt,
        max = t.max_attempts,
        run_at = time(t.run_at),
        created = time(t.created_at),
        started = opt_time(t.started_at),
        finished = opt_time(t.finished_at),
        duration = t
            .duration_ms
            .map(|d| format!("{d:.1} ms"))
            .unwrap_or_else(|| "—".into()),
        lineage = link_id("tasks", t.lineage_id.0),
        from = t
            .reprocessed_from
            .map(|r| link_id("tasks", r.0))
            .unwrap_or_else(|| "—".into()),
        errors = errors_table(&t.errors),
        copies = if copies.is_empty() {
            NOT_REPROCESSED.to_string()
        } else {
            task_table("copies", copies, names)
        },
        payload = pretty_json(&t.payload),
    )
}

/// The event detail page body.
pub fn event_detail(
    d: &EventDetail,
    copies: &[EventView],
    names: &Names,
    who: &OperatorSession,
) -> String {
    let e = &d.event;
    let id = uuid(e.id.0);
    let reprocess = if e.status.can_reprocess() {
        reprocess_form(&format!("/admin/events/{id}/reprocess"), who, "event")
    } else {
        r#"<p class="muted">It can be reprocessed once it is dispatched or dead.</p>"#.into()
    };
    let tasks = if d.tasks.is_empty() {
        r#"<p class="muted">No task (yet).</p>"#.to_string()
    } else {
        task_table("produced", &d.tasks, names)
    };
    let copies = if copies.is_empty() {
        NOT_REPROCESSED.to_string()
    } else {
        event_table("copies", copies, names)
    };
    format!(
        r#"<h1>Event <code>{id}</code></h1><div id="live"><p>{badge} <strong>{type_}</strong></p>{reprocess}
<dl class="facts"><dt>Status</dt><dd>{badge}</dd><dt>Type</dt><dd>{type_}</dd><dt>Aggregate</dt><dd>{agg} <code>{agg_id}</code></dd>
<dt>Institution</dt><dd>{inst}</dd><dt>Correlation id</dt><dd>{corr}</dd><dt>Occurred</dt><dd>{occurred}</dd>
<dt>Dispatched</dt><dd>{dispatched}</dd><dt>Attempts</dt><dd>{attempts}</dd><dt>Reprocessed from</dt><dd>{from}</dd></dl>
<h2>Tasks it produced</h2>{tasks}<h2>Attempts that failed</h2>{errors}<h2>Copies</h2>{copies}<h2>Payload</h2>{payload}</div>"#,
        badge = badge(e.status.as_str()),
        type_ = escape(&e.event_type),
        agg = escape(&e.aggregate_type),
        agg_id = uuid(e.aggregate_id),
        inst = institution_cell(names, e.institution_id),
        corr = e
            .correlation_id
            .as_ref()
            .map(|c| format!(
                r#"<a href="{}">{}</a>"#,
                escape(&link("/admin/events", &[("correlation_id", c.clone())])),
                escape(c)
            ))
            .unwrap_or_else(|| "—".into()),
        occurred = time(e.occurred_at),
        dispatched = opt_time(e.dispatched_at),
        attempts = e.attempts,
        from = e
            .reprocessed_from
            .map(|r| link_id("events", r.0))
            .unwrap_or_else(|| "—".into()),
        errors = errors_table(&e.errors),
        payload = pretty_json(&e.payload),
    )
}

// ---------------------------------------------------------------------------------------
// Overview

fn counts_html<S: ListStatus>(
    list: &str,
    counts: &[StatusCount<S>],
    extra: &[(&str, String)],
) -> String {
    if counts.is_empty() {
        return r#"<span class="muted">none</span>"#.into();
    }
    counts
        .iter()
        .map(|c| {
            let mut pairs = extra.to_vec();
            pairs.push(("status", c.status.as_str().into()));
            format!(
                r#"<a href="{href}" data-status="{s}">{badge}<span class="n">{approx}{n}</span></a>"#,
                href = escape(&link(list, &pairs)),
                s = c.status.as_str(),
                badge = badge(c.status.as_str()),
                approx = if c.approximate { "≈" } else { "" },
                n = c.count,
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn age(seconds: Option<f64>) -> String {
    match seconds {
        None => "nothing waiting".into(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// A bar chart of the last hour: one bar per minute, stacked series.
fn chart(title: &str, series: &[(&str, &str, Vec<i64>)]) -> String {
    let minutes = series.first().map_or(0, |s| s.2.len()).max(1);
    let totals: Vec<i64> = (0..minutes)
        .map(|i| {
            series
                .iter()
                .map(|s| s.2.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h) = (600.0, 100.0);
    let bar = w / minutes as f64;
    let mut bars = String::new();
    for i in 0..minutes {
        let mut y = h;
        for (class, label, values) in series {
            let v = values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let height = v as f64 / max * (h - 4.0);
            y -= height;
            let _ = write!(
                bars,
                r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{height:.1}"><title>{label}: {v} ({ago} min ago)</title></rect>"#,
                x = i as f64 * bar,
                bw = (bar - 1.0).max(1.0),
                ago = minutes - 1 - i,
            );
        }
    }
    let legend: String = series
        .iter()
        .map(|(class, label, values)| {
            format!(
                r#"<i class="{class}"></i>{label} ({})"#,
                values.iter().sum::<i64>()
            )
        })
        .collect();
    format!(
        r#"<div class="card chart"><h3>{title}</h3><svg viewBox="0 0 {w} {hh}" preserveAspectRatio="none" role="img" aria-label="{title}">{bars}
<text class="axis" x="0" y="{ty}">60 min ago</text><text class="axis" x="{w}" y="{ty}" text-anchor="end">now · max {max}/min</text></svg><div class="legend">{legend}</div></div>"#,
        hh = h + 14.0,
        ty = h + 11.0,
    )
}

/// The overview page body.
pub fn overview(
    f: &FilterValues,
    s: &EngineSummary,
    names: &Names,
    who: &OperatorSession,
) -> String {
    let scope: Vec<(&str, String)> = vec![
        (
            "institution_id",
            f.institution_id.clone().unwrap_or_default(),
        ),
        ("from", f.from.clone().unwrap_or_default()),
        ("to", f.to.clone().unwrap_or_default()),
    ];
    let mut event_scope = scope.clone();
    event_scope.push(("event_type", f.event_type.clone().unwrap_or_default()));
    let mut task_scope = scope.clone();
    task_scope.push(("task_type", f.task_type.clone().unwrap_or_default()));
    let by_type: String = s
        .tasks_by_type
        .iter()
        .map(|(t, status, n)| {
            let mut pairs = scope.clone();
            pairs.push(("task_type", t.clone()));
            pairs.push(("status", status.as_str().into()));
            format!(
                r#"<tr><td>{}</td><td>{}</td><td class="num"><a href="{}">{n}</a></td></tr>"#,
                escape(t),
                badge(status.as_str()),
                escape(&link("/admin/tasks", &pairs))
            )
        })
        .collect();
    let by_type = if by_type.is_empty() {
        r#"<div class="empty">No task is waiting, running or failed.</div>"#.to_string()
    } else {
        format!(
            r#"<table id="by-type"><thead><tr><th>task type</th><th>status</th><th>count</th></tr></thead><tbody>{by_type}</tbody></table>"#
        )
    };
    let minute = |pick: fn(&campus_ports::MinuteCounts) -> i64| -> Vec<i64> {
        s.per_minute.iter().map(pick).collect()
    };
    let filters = format!(
        r#"<form class="filters" method="get" action="/admin">{inst}{et}{tt}{from}{to}<button class="primary" type="submit">Filter</button><a href="/admin">Clear</a></form>"#,
        inst = institution_select(f, names, who),
        et = input("event_type", "Event type", &f.event_type, "size=\"18\""),
        tt = input("task_type", "Task type", &f.task_type, "size=\"18\""),
        from = input("from", "Counted from (UTC)", &f.from, TIME_INPUT),
        to = input("to", "Counted to (UTC)", &f.to, TIME_INPUT),
    );
    format!(
        r#"<h1>Overview</h1>{filters}<div id="live"><div class="cards">
<div class="card" id="event-counts"><h3>Events by status</h3><div class="counts">{events}</div></div>
<div class="card" id="task-counts"><h3>Tasks by status</h3><div class="counts">{tasks}</div></div>
<div class="card"><h3>Failure rate, tasks of the last hour</h3><div class="big" id="failure-rate">{rate:.1}%</div></div>
<div class="card"><h3>Oldest waiting</h3><div>event: <strong id="oldest-event">{oldest_event}</strong></div><div>task: <strong id="oldest-task">{oldest_task}</strong></div></div>
</div><div class="cards charts">{event_chart}{task_chart}</div>
<h2>Tasks needing attention, by type</h2>{by_type}
<p class="muted">≈: the planner's estimate, used for the bulk status of a large table instead of counting every row.</p></div>"#,
        events = counts_html("/admin/events", &s.events_by_status, &event_scope),
        tasks = counts_html("/admin/tasks", &s.tasks_by_status, &task_scope),
        rate = s.failure_rate * 100.0,
        oldest_event = age(s.oldest_pending_event_age_s),
        oldest_task = age(s.oldest_pending_task_age_s),
        event_chart = chart(
            "Events recorded per minute",
            &[("bar-events", "events", minute(|m| m.events))]
        ),
        task_chart = chart(
            "Tasks created per minute, by outcome",
            &[
                ("bar-ok", "succeeded", minute(|m| m.tasks_succeeded)),
                ("bar-failed", "failed", minute(|m| m.tasks_failed))
            ]
        ),
    )
}

#[cfg(test)]
mod tests {
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
        let svg = chart("t", &[("a", "a", vec![0, 5, 10])]);
        assert_eq!(
            svg.matches("<rect").count(),
            2,
            "no bar for an empty minute"
        );
        assert!(svg.contains("max 10/min"));
    }
}
