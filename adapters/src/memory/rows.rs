//! The in-memory tables: rows of events and tasks (shaped like their PostgreSQL tables), the
//! academic entities, and the id minting and JSON rendering they share.

use crate::dto::event_payload;
use campus_core::academic::{Class, Discipline, Enrollment};
use campus_core::engine::{EventStatus, Priority, TaskStatus, DEFAULT_PRIORITY_LAG};
use campus_core::ids::*;
use campus_core::user::{ResetPasswordToken, User};
use campus_core::{DomainEvent, Timestamp};
use campus_ports::{Archived, AttemptError, EventContext, EventView, PortError, TaskView};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// A `domain_events` row.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub id: EventId,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: u128,
    pub institution_id: Option<InstitutionId>,
    pub payload: Value,
    pub correlation_id: Option<String>,
    pub reprocess_request_id: Option<String>,
    pub actor_id: Option<UserId>,
    pub status: EventStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub occurred_at: Timestamp,
    pub dispatched_at: Option<Timestamp>,
    pub reprocessed_from: Option<EventId>,
    pub errors: Vec<AttemptError>,
}

/// A `tasks` row.
#[derive(Debug, Clone)]
pub(crate) struct TaskRow {
    pub id: TaskId,
    pub lineage_id: TaskId,
    pub task_type: String,
    pub handler: Option<String>,
    pub payload: Value,
    pub institution_id: Option<InstitutionId>,
    pub event_id: Option<EventId>,
    pub correlation_id: Option<String>,
    pub reprocess_request_id: Option<String>,
    pub reprocessed_from: Option<TaskId>,
    pub status: TaskStatus,
    pub attempt: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub priority: Priority,
    /// Its turn: `run_at` plus its priority's delay (set by [`new_task_row`]).
    pub claim_at: Timestamp,
    /// Tasks with the same key run one at a time, by event id.
    pub ordering_key: Option<String>,
    pub locked_by: Option<String>,
    pub locked_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<f64>,
    pub errors: Vec<AttemptError>,
}

/// A user with what only the store keeps.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub user: User,
    pub access_version: i64,
}

/// A reset token and when it was issued.
#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub token: ResetPasswordToken,
    pub created_at: Timestamp,
}

/// A stored notification.
#[derive(Debug, Clone)]
pub(crate) struct NotificationRow {
    pub id: NotificationId,
    pub user_id: UserId,
    pub kind: String,
    pub message: String,
    pub created_at: Timestamp,
    pub correlation_id: Option<String>,
}

/// An operator's browser session.
#[derive(Debug, Clone)]
pub(crate) struct SessionRow {
    pub user_id: UserId,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// Every table. Maps keyed by time-ordered ids iterate in creation order.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The last id minted: (millisecond, sequence within it).
    last_id: (i64, u64),
    pub events: BTreeMap<u128, EventRow>,
    /// Events a dispatcher is planning right now (skipped by other dispatchers).
    pub dispatching: HashSet<u128>,
    pub tasks: BTreeMap<u128, TaskRow>,
    /// `idempotency_key` → task (the unique index).
    pub task_keys: HashMap<String, u128>,
    pub institutions: BTreeMap<u128, String>,
    pub users: BTreeMap<u128, UserRow>,
    /// E-mail → user (the unique index).
    pub emails: HashMap<String, u128>,
    pub tokens: BTreeMap<u128, TokenRow>,
    pub disciplines: BTreeMap<u128, Discipline>,
    pub classes: BTreeMap<u128, Class>,
    /// (class, student) → enrollment.
    pub enrollments: BTreeMap<(u128, u128), Enrollment>,
    pub notifications: BTreeMap<u128, NotificationRow>,
    pub notification_keys: HashSet<String>,
    /// Institution → the task that seeded its demo data.
    pub demo_seeds: HashMap<u128, TaskId>,
    /// Task lineage → (message id, recipient, when it was sent).
    pub sent_emails: HashMap<TaskId, (String, String, Timestamp)>,
    /// Token hash → session.
    pub sessions: HashMap<String, SessionRow>,
    /// Paused task types (`task_type_controls`).
    pub paused: BTreeSet<String>,
    /// The archive tables: rows and when they were archived.
    pub archived_events: BTreeMap<u128, (EventRow, Timestamp)>,
    pub archived_tasks: BTreeMap<u128, (TaskRow, Timestamp)>,
    pub archive_runs: Vec<campus_ports::ArchiveRun>,
    /// The daemon roster: worker id → its last heartbeat and when it was heard.
    pub daemons: BTreeMap<String, (campus_ports::DaemonBeat, Timestamp)>,
    /// Webhook subscriptions with their delivery target (secrets), and the delivery log.
    pub webhooks: BTreeMap<
        u128,
        (
            campus_ports::WebhookSubscription,
            campus_ports::DeliveryTarget,
        ),
    >,
    pub webhook_attempts: Vec<campus_ports::LoggedAttempt>,
    /// Subscription → its first failed attempt after its last success.
    pub failing_since: HashMap<u128, Option<Timestamp>>,
}

/// The rows of a live table, of its archive, or of both, newest first (ids are
/// time-ordered).
fn newest_first<'a, R>(
    live: &'a BTreeMap<u128, R>,
    archive: &'a BTreeMap<u128, (R, Timestamp)>,
    which: Archived,
) -> Vec<&'a R> {
    let live = live.iter().map(|(id, r)| (*id, r));
    let old = archive.iter().map(|(id, (r, _))| (*id, r));
    let mut rows: Vec<(u128, &R)> = match which {
        Archived::Live => live.collect(),
        Archived::Archived => old.collect(),
        Archived::All => live.chain(old).collect(),
    };
    rows.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    rows.into_iter().map(|(_, r)| r).collect()
}

impl State {
    /// An event, live or archived.
    pub fn event_anywhere(&self, id: u128) -> Option<&EventRow> {
        self.events
            .get(&id)
            .or_else(|| self.archived_events.get(&id).map(|(e, _)| e))
    }

    /// A task, live or archived.
    pub fn task_anywhere(&self, id: u128) -> Option<&TaskRow> {
        self.tasks
            .get(&id)
            .or_else(|| self.archived_tasks.get(&id).map(|(t, _)| t))
    }

    /// The events a list reads, newest first.
    pub fn list_events(&self, archived: Archived) -> Vec<&EventRow> {
        newest_first(&self.events, &self.archived_events, archived)
    }

    /// The tasks a list reads, newest first.
    pub fn list_tasks(&self, archived: Archived) -> Vec<&TaskRow> {
        newest_first(&self.tasks, &self.archived_tasks, archived)
    }

    /// Every event, live then archived.
    pub fn every_event(&self) -> impl Iterator<Item = &EventRow> {
        self.events
            .values()
            .chain(self.archived_events.values().map(|(e, _)| e))
    }

    /// Every task, live then archived.
    pub fn every_task(&self) -> impl Iterator<Item = &TaskRow> {
        self.tasks
            .values()
            .chain(self.archived_tasks.values().map(|(t, _)| t))
    }

    /// A new UUIDv7 whose time is `now` (never before the last one minted): ids sort in
    /// creation order, like the PostgreSQL adapter's `Uuid::now_v7()`.
    pub fn new_id(&mut self, now: Timestamp) -> u128 {
        let (last_ms, seq) = self.last_id;
        let ms = now.0.max(last_ms).max(0);
        let seq = if ms == last_ms { seq + 1 } else { 0 };
        self.last_id = (ms, seq);
        let mut tail = [0u8; 10];
        // The sequence sits in the last 7 bytes, clear of the version and variant bits.
        tail[3..].copy_from_slice(&seq.to_be_bytes()[1..]);
        uuid::Builder::from_unix_timestamp_millis(u64::try_from(ms).unwrap_or(0), &tail)
            .into_uuid()
            .as_u128()
    }

    /// Inserts the events aggregates recorded, as the outbox does in PostgreSQL.
    pub fn record(&mut self, events: Vec<DomainEvent>, ctx: &EventContext, now: Timestamp) {
        crate::telemetry::events_recorded(events.iter().map(|e| e.event_type()));
        for e in events {
            let (aggregate_type, aggregate_id) = e.aggregate();
            let row = EventRow {
                id: EventId(self.new_id(now)),
                event_type: e.event_type().to_string(),
                aggregate_type: aggregate_type.to_string(),
                aggregate_id,
                institution_id: e.institution_id(),
                payload: event_payload(&e),
                correlation_id: ctx.correlation_id.clone(),
                reprocess_request_id: None,
                actor_id: ctx.actor_id,
                status: EventStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                occurred_at: now,
                dispatched_at: None,
                reprocessed_from: None,
                errors: Vec::new(),
            };
            self.events.insert(row.id.0, row);
        }
    }
}

/// A pending task row with defaults, adjusted by `fill`.
pub(crate) fn new_task_row(
    id: TaskId,
    task_type: String,
    payload: Value,
    now: Timestamp,
    fill: impl FnOnce(TaskRow) -> TaskRow,
) -> TaskRow {
    let row = fill(TaskRow {
        id,
        lineage_id: id,
        task_type,
        handler: None,
        payload,
        institution_id: None,
        event_id: None,
        correlation_id: None,
        reprocess_request_id: None,
        reprocessed_from: None,
        status: TaskStatus::Pending,
        attempt: 0,
        max_attempts: 1,
        run_at: now,
        priority: Priority::Normal,
        claim_at: now,
        ordering_key: None,
        locked_by: None,
        locked_until: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        duration_ms: None,
        errors: Vec::new(),
    });
    TaskRow {
        claim_at: row.priority.turn(row.run_at, DEFAULT_PRIORITY_LAG),
        ..row
    }
}

/// Parses a payload the way PostgreSQL's `jsonb` input does. Errors: `Conflict`.
pub(crate) fn parse_payload(raw: &str, what: &str) -> Result<Value, PortError> {
    serde_json::from_str(raw)
        .map_err(|e| PortError::Conflict(format!("{what} payload is not JSON: {e}")))
}

/// `now + d`, rounded up to the millisecond (never due early).
pub(crate) fn after(now: Timestamp, d: Duration) -> Timestamp {
    let ms = i64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i64::MAX);
    Timestamp(now.0.saturating_add(ms))
}

/// An error's `at`, formatted as PostgreSQL renders a `timestamptz` inside `jsonb`.
pub(crate) fn error_at(ts: Timestamp) -> String {
    crate::dto::time(ts).to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// JSON text as PostgreSQL's `jsonb::text` writes it: object keys sorted by length, then
/// bytes; `", "` and `": "` separators. Payloads read back are the same text on both adapters.
pub(crate) fn jsonb_text(v: &Value) -> String {
    let mut out = String::new();
    write_jsonb(v, &mut out);
    out
}

fn write_jsonb(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_jsonb(&map[k], out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Whether `payload` contains `text`, case-insensitively (`ILIKE '%text%'` on `payload::text`).
pub(crate) fn payload_contains(payload: &Value, text: &str) -> bool {
    jsonb_text(payload)
        .to_lowercase()
        .contains(&text.to_lowercase())
}

impl EventRow {
    pub fn view(&self) -> EventView {
        EventView {
            id: self.id,
            event_type: self.event_type.clone(),
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id,
            institution_id: self.institution_id,
            status: self.status,
            attempts: self.attempts,
            correlation_id: self.correlation_id.clone(),
            reprocess_request_id: self.reprocess_request_id.clone(),
            actor_id: self.actor_id,
            occurred_at: self.occurred_at,
            dispatched_at: self.dispatched_at,
            reprocessed_from: self.reprocessed_from,
            errors: self.errors.clone(),
            payload: jsonb_text(&self.payload),
        }
    }
}

impl TaskRow {
    pub fn view(&self) -> TaskView {
        TaskView {
            id: self.id,
            task_type: self.task_type.clone(),
            handler: self.handler.clone(),
            institution_id: self.institution_id,
            event_id: self.event_id,
            status: self.status,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            correlation_id: self.correlation_id.clone(),
            reprocess_request_id: self.reprocess_request_id.clone(),
            reprocessed_from: self.reprocessed_from,
            lineage_id: self.lineage_id,
            run_at: self.run_at,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration_ms: self.duration_ms,
            errors: self.errors.clone(),
            payload: jsonb_text(&self.payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_v7_and_strictly_increasing() {
        let mut s = State::default();
        let a = s.new_id(Timestamp(5));
        let b = s.new_id(Timestamp(5));
        let c = s.new_id(Timestamp(4));
        let d = s.new_id(Timestamp(6));
        assert!(a < b && b < c && c < d, "{a:x} {b:x} {c:x} {d:x}");
        assert_eq!(uuid::Uuid::from_u128(a).get_version_num(), 7);
        assert_eq!(d >> 80, 6, "the id's first 48 bits are its millisecond");
    }

    #[test]
    fn payload_text_is_written_like_jsonb() {
        let v: Value = serde_json::from_str(r#"{"bb":[1,"x"],"a":{"z":null,"yy":true}}"#).unwrap();
        assert_eq!(
            jsonb_text(&v),
            r#"{"a": {"z": null, "yy": true}, "bb": [1, "x"]}"#
        );
        assert!(payload_contains(&v, "YY\": TRUE"));
    }
}
