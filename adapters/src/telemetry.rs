//! The one metric the adapters record themselves: events inserted by the outbox and the event
//! store (the app's `metrics` module names and describes it with the rest).

/// `campus_events_recorded_total{event_type}`.
pub const EVENTS_RECORDED: &str = "campus_events_recorded_total";

/// Counts recorded events by type.
pub(crate) fn events_recorded<'a>(types: impl IntoIterator<Item = &'a str>) {
    for t in types {
        metrics::counter!(EVENTS_RECORDED, "event_type" => t.to_string()).increment(1);
    }
}
