//! Fixed read models for rendering every page in unit tests: two institutions (one with
//! markup in its name), an event with a task and a copy, errors and payloads with markup.

use super::*;
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::ids::InstitutionId;
use campus_core::ids::{EventId, TaskId, UserId};
use campus_core::Timestamp;
use campus_ports::{
    AttemptError, EngineSummary, EventDetail, EventView, OperatorSession, StatusCount,
};
use campus_ports::{DueBacklog, InstitutionBacklog, MinuteCounts, PriorityCounts};
use campus_ports::{TaskView, TypeStats};
use maud::Markup;

pub const HOSTILE: &str = r#"<script>alert("x&y")</script>'"#;

pub fn names() -> Names {
    [
        (InstitutionId(1), "Alpha College".to_string()),
        (InstitutionId(2), format!("Beta {HOSTILE}")),
    ]
    .into_iter()
    .collect()
}

pub fn adm() -> OperatorSession {
    OperatorSession {
        user_id: UserId(9),
        role: campus_core::values::Role::Adm,
        institution_id: None,
        name: "Root <admin>".into(),
        email: "root@x.test".into(),
        csrf_token: "csrf\"token".into(),
        expires_at: Timestamp(0),
    }
}

pub fn academic() -> OperatorSession {
    OperatorSession {
        role: campus_core::values::Role::Academic,
        institution_id: Some(InstitutionId(2)),
        ..adm()
    }
}

fn error(attempt: u32) -> AttemptError {
    AttemptError {
        at: "2026-01-02T03:04:05Z".into(),
        attempt,
        message: format!("printer on fire {HOSTILE}"),
    }
}

pub fn task(id: u128, status: &str) -> TaskView {
    let status = TaskStatus::parse(status).expect("a task status");
    TaskView {
        id: TaskId(id),
        task_type: format!("print_{HOSTILE}"),
        handler: Some("print_report".into()),
        institution_id: Some(InstitutionId(2)),
        event_id: Some(EventId(77)),
        status,
        attempt: 3,
        max_attempts: 5,
        correlation_id: Some(format!("corr {HOSTILE}")),
        reprocess_request_id: (id > 100).then(|| "op-task-1".into()),
        reprocessed_from: (id > 100).then_some(TaskId(100)),
        lineage_id: TaskId(100),
        run_at: Timestamp(1_767_225_600_000),
        created_at: Timestamp(1_767_225_601_000),
        started_at: Some(Timestamp(1_767_225_602_000)),
        finished_at: None,
        duration_ms: Some(12.345),
        errors: vec![error(1), error(2)],
        payload: format!(r#"{{"report":"{}"}}"#, HOSTILE.replace('"', "\\\"")),
    }
}

pub fn event(id: u128, status: &str) -> EventView {
    let status = EventStatus::parse(status).expect("an event status");
    EventView {
        id: EventId(id),
        event_type: format!("ReportRequested{HOSTILE}"),
        aggregate_type: "Report".into(),
        aggregate_id: 5,
        institution_id: (id == 78).then_some(InstitutionId(1)),
        status,
        attempts: 1,
        correlation_id: Some("c-1".into()),
        reprocess_request_id: (id > 100).then(|| "op-event-1".into()),
        actor_id: (id == 78).then_some(UserId(12)),
        occurred_at: Timestamp(1_767_225_600_000),
        dispatched_at: None,
        reprocessed_from: (id > 100).then_some(EventId(77)),
        errors: if id == 78 { vec![] } else { vec![error(1)] },
        payload: "not json <b>".into(),
    }
}

pub fn filters() -> FilterValues {
    FilterValues {
        institution_id: Some(uuid(2)),
        task_type: Some(HOSTILE.into()),
        status: Some("dead".into()),
        q: Some("a&b c".into()),
        before: Some(uuid(5)),
        ..FilterValues::default()
    }
}

pub fn summary() -> EngineSummary {
    fn count<S>(status: S, count: i64, approximate: bool) -> StatusCount<S> {
        StatusCount {
            status,
            count,
            approximate,
        }
    }
    EngineSummary {
        events_by_status: vec![
            count(EventStatus::Dispatched, 1200, true),
            count(EventStatus::Dead, 2, false),
        ],
        tasks_by_status: vec![
            count(TaskStatus::Succeeded, 40, false),
            count(TaskStatus::Dead, 3, false),
        ],
        tasks_by_type: vec![(format!("print_{HOSTILE}"), TaskStatus::Dead, 3)],
        per_minute: (0..60)
            .map(|m| MinuteCounts {
                minute: Timestamp(m * 60_000),
                events: m % 7,
                tasks_succeeded: m % 5,
                tasks_failed: m % 3,
            })
            .collect(),
        failure_rate: 0.0625,
        oldest_pending_event_age_s: None,
        oldest_pending_task_age_s: Some(90.0),
        due_backlog: due_backlog(),
    }
}

/// Three institutions listed (a named one, one without a name, and the tasks of none) and
/// more due tasks than they hold.
fn due_backlog() -> DueBacklog {
    let counts = |interactive, normal, bulk| PriorityCounts {
        interactive,
        normal,
        bulk,
    };
    let of = |id: Option<u128>, name: Option<String>, due| InstitutionBacklog {
        institution_id: id.map(InstitutionId),
        name,
        due,
    };
    DueBacklog {
        institutions: vec![
            of(
                Some(2),
                Some(format!("Beta {HOSTILE}")),
                counts(4, 250, 9000),
            ),
            of(Some(3), None, counts(0, 12, 0)),
            of(None, None, counts(1, 0, 0)),
        ],
        total: counts(6, 270, 9000),
    }
}

/// A whole page of the screen around `body`.
fn page(
    title: &str,
    section: Section,
    who: &OperatorSession,
    flash: &Flash,
    body: &Markup,
) -> String {
    layout(title, section, who, &names(), flash, body, 0).into_string()
}

/// The overview and the lists, full (for an Adm user) and empty (for an Academic user).
fn lists() -> Vec<(&'static str, String)> {
    let (names, adm, academic, none) = (names(), adm(), academic(), Flash::None);
    let (f, blank) = (filters(), FilterValues::default());
    let running = FilterValues {
        status: Some("running".into()),
        ..FilterValues::default()
    };
    let tasks = [task(100, "dead"), task(101, "succeeded")];
    let events = [event(77, "dead"), event(78, "dispatched")];
    let flash = Flash::Done(format!("2 copies {HOSTILE}"));
    let overview_empty = overview(&blank, &EngineSummary::default(), &[], &names, &academic);
    let types = [TypeStats {
        task_type: format!("print{HOSTILE}"),
        succeeded: 3,
        failed: 1,
        p50_ms: Some(2.5),
        p95_ms: None,
    }];
    vec![
        (
            "overview",
            page(
                "Overview",
                Section::Overview,
                &adm,
                &none,
                &overview(&f, &summary(), &types, &names, &adm),
            ),
        ),
        (
            "overview-empty",
            page(
                "Overview",
                Section::Overview,
                &academic,
                &none,
                &overview_empty,
            ),
        ),
        (
            "events",
            page(
                "Events",
                Section::Events,
                &adm,
                &none,
                &event_list(&f, &events, Some(78), &names, &adm),
            ),
        ),
        (
            "events-empty",
            page(
                "Events",
                Section::Events,
                &academic,
                &none,
                &event_list(&blank, &[], None, &names, &academic),
            ),
        ),
        (
            "tasks",
            page(
                "Tasks",
                Section::Tasks,
                &adm,
                &flash,
                &task_list(&f, &tasks, Some(101), &names, &adm, 1000),
            ),
        ),
        (
            "tasks-empty",
            page(
                "Tasks",
                Section::Tasks,
                &academic,
                &none,
                &task_list(&running, &[], None, &names, &academic, 1000),
            ),
        ),
    ]
}

/// The detail pages (finished and not), the login page and an error page.
fn details() -> Vec<(&'static str, String)> {
    let (names, adm, academic, none) = (names(), adm(), academic(), Flash::None);
    let tasks = vec![task(100, "dead"), task(101, "succeeded")];
    let detail = EventDetail {
        event: event(77, "dead"),
        tasks: tasks.clone(),
        copies: vec![EventId(178)],
    };
    let pending = EventDetail {
        event: event(79, "pending"),
        tasks: vec![],
        copies: vec![],
    };
    let copy = EventDetail {
        event: event(178, "dispatched"),
        tasks: vec![task(103, "succeeded")],
        copies: vec![],
    };
    let refused = Flash::Error(format!("refused {HOSTILE}"));
    let running = task_detail(&task(102, "running"), &[], &names, &academic);
    vec![
        (
            "task",
            page(
                "Task",
                Section::Tasks,
                &adm,
                &refused,
                &task_detail(&tasks[0], &tasks[1..], &names, &adm),
            ),
        ),
        (
            "task-running",
            page("Task", Section::Tasks, &academic, &none, &running),
        ),
        (
            "event",
            page(
                "Event",
                Section::Events,
                &adm,
                &none,
                &event_detail(&detail, &[event(178, "dispatched")], &names, &adm),
            ),
        ),
        (
            "event-pending",
            page(
                "Event",
                Section::Events,
                &academic,
                &none,
                &event_detail(&pending, &[], &names, &academic),
            ),
        ),
        (
            "event-copy",
            page(
                "Event",
                Section::Events,
                &adm,
                &none,
                &event_detail(&copy, &[], &names, &adm),
            ),
        ),
        (
            "login",
            login("csrf\"x", "/admin/tasks?a=1&b=\"2\"", HOSTILE, None).into_string(),
        ),
        (
            "login-error",
            login("c", "/admin", "", Some(HOSTILE)).into_string(),
        ),
        ("message", message("Not Found", HOSTILE).into_string()),
    ]
}

/// Every page, whole, by name.
pub fn pages() -> Vec<(&'static str, String)> {
    lists().into_iter().chain(details()).collect()
}
