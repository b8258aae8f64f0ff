//! The filters of the operators' lists, one query type per kind (events, tasks, summary):
//! their page-size bounds, paging, and their one parser from the fields of a query string
//! or form. The API, the admin screen and every [`EngineLog`](super::EngineLog) share them.

use super::{EventView, TaskView};
use crate::TaskFilter;
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::ids::*;
use campus_core::{DomainError, Timestamp};

/// Items a list page holds unless asked otherwise.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Most items one list page holds.
pub const MAX_PAGE_LIMIT: u32 = 200;

/// A page size as asked (`None`: [`DEFAULT_PAGE_LIMIT`]), brought within
/// `1..=`[`MAX_PAGE_LIMIT`].
pub fn clamp_limit(asked: Option<u32>) -> u32 {
    asked.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT)
}

/// A status enum the lists filter on and show.
pub trait ListStatus: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// Every status, in the order forms offer them.
    const ALL: &'static [Self];
    /// Its name in the database, URLs and JSON.
    fn as_str(self) -> &'static str;
}

impl ListStatus for EventStatus {
    const ALL: &'static [Self] = &EventStatus::ALL;
    fn as_str(self) -> &'static str {
        EventStatus::as_str(self)
    }
}

impl ListStatus for TaskStatus {
    const ALL: &'static [Self] = &TaskStatus::ALL;
    fn as_str(self) -> &'static str {
        TaskStatus::as_str(self)
    }
}

/// The fields of a query string or form, by name.
pub trait FilterFields {
    fn field(&self, name: &str) -> Option<&str>;
}

impl FilterFields for [(&str, &str)] {
    fn field(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

fn invalid(field: &'static str, message: String) -> DomainError {
    DomainError::Invalid { field, message }
}

/// The trimmed value of `name`; blank counts as absent.
fn text(f: &(impl FilterFields + ?Sized), name: &str) -> Option<String> {
    f.field(name)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn id(f: &(impl FilterFields + ?Sized), name: &'static str) -> Result<Option<u128>, DomainError> {
    text(f, name)
        .map(|s| {
            uuid::Uuid::parse_str(&s)
                .map(|u| u.as_u128())
                .map_err(|_| invalid(name, format!("{s:?} is not an id")))
        })
        .transpose()
}

/// RFC 3339, or `2026-11-24T10:30` / `2026-11-24T10:30:15` in UTC (as a datetime-local
/// field sends them).
fn time(
    f: &(impl FilterFields + ?Sized),
    name: &'static str,
) -> Result<Option<Timestamp>, DomainError> {
    let Some(s) = text(f, name) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&s) {
        return Ok(Some(Timestamp(t.timestamp_millis())));
    }
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|fmt| chrono::NaiveDateTime::parse_from_str(&s, fmt).ok())
    .map(|t| Some(Timestamp(t.and_utc().timestamp_millis())))
    .ok_or_else(|| {
        invalid(
            name,
            format!("{s:?} is not a time like 2026-11-24T10:30 (UTC)"),
        )
    })
}

fn flag(f: &(impl FilterFields + ?Sized), name: &'static str) -> Result<Option<bool>, DomainError> {
    match text(f, name).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(invalid(name, format!("{other:?} must be true or false"))),
    }
}

/// A `limit` field: absent or blank gives `default`; otherwise a number in `1..=max`.
pub fn parse_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, DomainError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| invalid("limit", format!("{s:?} must be a number from 1 to {max}"))),
    }
}

/// A `status` field: absent or blank does not filter.
pub fn parse_status<S: ListStatus>(raw: Option<&str>) -> Result<Option<S>, DomainError> {
    let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    S::ALL
        .iter()
        .copied()
        .find(|status| status.as_str() == s)
        .map(Some)
        .ok_or_else(|| {
            let all: Vec<&str> = S::ALL.iter().map(|s| s.as_str()).collect();
            invalid("status", format!("{s:?} must be one of {}", all.join(", ")))
        })
}

/// The next page's `before`: the last item's id when the page is full (a shorter page is
/// the last one).
fn next_before<T, Id>(page: &[T], limit: u32, id: impl Fn(&T) -> Id) -> Option<Id> {
    let full = page.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
    page.last().filter(|_| full).map(id)
}

/// Which rows a list reads: the live tables, the archive, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Archived {
    #[default]
    Live,
    Archived,
    All,
}

impl Archived {
    pub const ALL: [Archived; 3] = [Archived::Live, Archived::Archived, Archived::All];

    /// Its name in URLs and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            Archived::Live => "live",
            Archived::Archived => "archived",
            Archived::All => "all",
        }
    }

    /// `live`, `archived` or `all`; absent or blank: `live`.
    pub fn parse(raw: Option<&str>) -> Result<Archived, DomainError> {
        let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Archived::Live);
        };
        Archived::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| invalid("archived", format!("{s:?} must be live, archived or all")))
    }
}

/// What both lists filter on. `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Live rows (the default), archived ones, or both.
    pub archived: Archived,
    pub institution_id: Option<InstitutionId>,
    /// Recorded (events) or created (tasks) at or after this instant…
    pub from: Option<Timestamp>,
    /// … and before this one.
    pub to: Option<Timestamp>,
    /// Rows whose correlation id is this one, or that an operator's request with this id
    /// made (`reprocess_request_id`): both ids of a copy find it.
    pub correlation_id: Option<String>,
    pub has_errors: Option<bool>,
    /// Case-insensitive text searched in the payload.
    pub text: Option<String>,
}

impl ListFilter {
    /// From the fields `archived`, `institution_id`, `from`, `to`, `correlation_id`,
    /// `has_errors`, `q`.
    pub fn parse(f: &(impl FilterFields + ?Sized)) -> Result<Self, DomainError> {
        Ok(ListFilter {
            archived: Archived::parse(f.field("archived"))?,
            institution_id: id(f, "institution_id")?.map(InstitutionId),
            from: time(f, "from")?,
            to: time(f, "to")?,
            correlation_id: text(f, "correlation_id"),
            has_errors: flag(f, "has_errors")?,
            text: text(f, "q"),
        })
    }
}

/// A page of the event list. Newest first; `before` is the last id of the previous page
/// (ids are time-ordered, so pages stay stable while rows are inserted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub status: Option<EventStatus>,
    pub filter: ListFilter,
    pub before: Option<EventId>,
    /// `1..=`[`MAX_PAGE_LIMIT`].
    pub limit: u32,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            event_type: None,
            status: None,
            filter: ListFilter::default(),
            before: None,
            limit: DEFAULT_PAGE_LIMIT,
        }
    }
}

impl EventQuery {
    /// From the common fields (see [`ListFilter::parse`]) and `event_type`, `status`,
    /// `before`, `limit`.
    pub fn parse(f: &(impl FilterFields + ?Sized)) -> Result<Self, DomainError> {
        Ok(EventQuery {
            event_type: text(f, "event_type"),
            status: parse_status(f.field("status"))?,
            filter: ListFilter::parse(f)?,
            before: id(f, "before")?.map(EventId),
            limit: parse_limit(f.field("limit"), DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?,
        })
    }

    /// Where the page after `page` (an answer to this query) starts.
    pub fn next_before(&self, page: &[EventView]) -> Option<EventId> {
        next_before(page, self.limit, |e| e.id)
    }
}

/// A page of the task list; see [`EventQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuery {
    pub task_type: Option<String>,
    pub status: Option<TaskStatus>,
    /// Only tasks produced by this event.
    pub event_id: Option<EventId>,
    pub filter: ListFilter,
    pub before: Option<TaskId>,
    /// `1..=`[`MAX_PAGE_LIMIT`].
    pub limit: u32,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            task_type: None,
            status: None,
            event_id: None,
            filter: ListFilter::default(),
            before: None,
            limit: DEFAULT_PAGE_LIMIT,
        }
    }
}

impl TaskQuery {
    /// From the common fields (see [`ListFilter::parse`]) and `task_type`, `status`,
    /// `event_id`, `before`, `limit`.
    pub fn parse(f: &(impl FilterFields + ?Sized)) -> Result<Self, DomainError> {
        Ok(TaskQuery {
            task_type: text(f, "task_type"),
            status: parse_status(f.field("status"))?,
            event_id: id(f, "event_id")?.map(EventId),
            filter: ListFilter::parse(f)?,
            before: id(f, "before")?.map(TaskId),
            limit: parse_limit(f.field("limit"), DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?,
        })
    }

    /// Where the page after `page` (an answer to this query) starts.
    pub fn next_before(&self, page: &[TaskView]) -> Option<TaskId> {
        next_before(page, self.limit, |t| t.id)
    }

    /// The tasks in `status` a bulk operation with these filters selects (paging and
    /// `has_errors` aside).
    pub fn bulk_filter(&self, status: TaskStatus) -> TaskFilter {
        TaskFilter {
            task_type: self.task_type.clone(),
            institution_id: self.filter.institution_id,
            status: Some(status),
            created_from: self.filter.from,
            created_to: self.filter.to,
            event_id: self.event_id,
            correlation_id: self.filter.correlation_id.clone(),
            text: self.filter.text.clone(),
        }
    }
}

/// Filters of the summary. `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryQuery {
    pub institution_id: Option<InstitutionId>,
    /// Counts of events of this type only.
    pub event_type: Option<String>,
    /// Counts of tasks of this type only.
    pub task_type: Option<String>,
    /// Counts of items recorded (events) or created (tasks) in this range; the per-minute
    /// series always covers the last hour.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl SummaryQuery {
    /// From the fields `institution_id`, `event_type`, `task_type`, `from`, `to`.
    pub fn parse(f: &(impl FilterFields + ?Sized)) -> Result<Self, DomainError> {
        Ok(SummaryQuery {
            institution_id: id(f, "institution_id")?.map(InstitutionId),
            event_type: text(f, "event_type"),
            task_type: text(f, "task_type"),
            from: time(f, "from")?,
            to: time(f, "to")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: DomainError) -> String {
        e.to_string()
    }

    #[test]
    fn filters_are_validated_with_clear_messages() {
        let bad_status: &[(&str, &str)] = &[("status", "exploded")];
        let m = message(TaskQuery::parse(bad_status).unwrap_err());
        assert!(m.starts_with("status: \"exploded\""), "{m}");
        assert!(m.contains("cancelled"), "{m}");
        let fields: &[(&str, &str)] = &[("from", "2026-11-24T10:30"), ("institution_id", " ")];
        let q = TaskQuery::parse(fields).unwrap();
        assert_eq!(q.filter.from, Some(Timestamp(1_795_516_200_000)));
        assert_eq!(q.filter.institution_id, None, "blank fields do not filter");
        assert_eq!(q.limit, DEFAULT_PAGE_LIMIT);
        let too_many: &[(&str, &str)] = &[("limit", "5000")];
        assert!(message(EventQuery::parse(too_many).unwrap_err()).starts_with("limit:"));
        let bad_time: &[(&str, &str)] = &[("to", "yesterday")];
        assert!(message(SummaryQuery::parse(bad_time).unwrap_err()).starts_with("to:"));
    }

    #[test]
    fn every_status_parses_back_from_its_name() {
        for s in EventStatus::ALL {
            assert_eq!(parse_status(Some(s.as_str())).unwrap(), Some(s));
        }
        for s in TaskStatus::ALL {
            assert_eq!(parse_status(Some(s.as_str())).unwrap(), Some(s));
        }
        assert_eq!(parse_status::<TaskStatus>(Some("")).unwrap(), None);
    }

    #[test]
    fn limits_stay_within_bounds() {
        assert_eq!(clamp_limit(None), DEFAULT_PAGE_LIMIT);
        assert_eq!(clamp_limit(Some(0)), 1);
        assert_eq!(clamp_limit(Some(5000)), MAX_PAGE_LIMIT);
        assert_eq!(parse_limit(Some("7"), 50, 10).unwrap(), 7);
        assert!(parse_limit(Some("0"), 50, 10).is_err());
    }

    #[test]
    fn only_a_full_page_has_a_next_one() {
        let ids = [5u128, 4, 3];
        assert_eq!(next_before(&ids, 3, |i| *i), Some(3));
        assert_eq!(next_before(&ids, 4, |i| *i), None);
        assert_eq!(next_before::<u128, u128>(&[], 1, |i| *i), None);
    }
}
