//! What a bench run measured, its latency summaries and the table the CLI prints.

use serde::Serialize;

/// What a run measured. Latencies in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    pub tasks_drained: usize,
    pub tasks_per_s: f64,
    pub e2e_events: usize,
    pub e2e_events_per_s: f64,
    pub e2e_tasks_per_s: f64,
    /// Phase (0): the outbox transactions committed per second by the same writers with no
    /// daemon, and phase (2)'s events/s as a fraction of it.
    pub commit_limit_events_per_s: f64,
    pub e2e_ratio: f64,
    pub task_latency_p50_ms: f64,
    pub task_latency_p99_ms: f64,
    pub task_latency_max_ms: f64,
    pub event_latency_p50_ms: f64,
    pub event_latency_p99_ms: f64,
    pub event_latency_max_ms: f64,
    pub loaded_task_latency_p50_ms: f64,
    pub loaded_task_latency_p99_ms: f64,
    pub loaded_task_latency_max_ms: f64,
    pub loaded_event_latency_p50_ms: f64,
    pub loaded_event_latency_p99_ms: f64,
    pub loaded_event_latency_max_ms: f64,
    pub api_reset_token_p50_ms: f64,
    pub api_reset_token_p99_ms: f64,
    pub api_grade_note_p50_ms: f64,
    pub api_grade_note_p99_ms: f64,
    /// The API's latencies are measured from each request's scheduled send time (see
    /// `load::open_loop`); `api_service_p99_ms` from the actual send, as before.
    pub api_p99_ms: f64,
    pub api_service_p99_ms: f64,
    /// How late the client sent requests after their scheduled time, p99 and worst (a
    /// client-side stall shows here, and its delay is in `api_p99_ms`).
    pub api_send_lag_p99_ms: f64,
    pub api_send_lag_max_ms: f64,
    pub api_rate_per_s: u32,
    pub api_errors: usize,
    /// E-mails the daemon delivered to the bench's SMTP sink (reset links of phase 4).
    pub emails_received: usize,
    pub daemon_peak_rss_mb: f64,
    /// Finished tasks in the live tables before the phases (`--history`).
    pub history_tasks: usize,
    /// What became of that history (`--archive`).
    pub archive: crate::cli::HistoryArchive,
    /// How long `campus archive` of the history took (0 when it did not run).
    pub archive_seconds: f64,
    /// Phase 5 (`--webhooks N`): events committed at once, each delivered to one webhook.
    pub webhook_events: usize,
    pub webhook_deliveries_per_s: f64,
    /// One event at a time: commit → delivery received.
    pub webhook_latency_p50_ms: f64,
    pub webhook_latency_p99_ms: f64,
    pub webhook_latency_max_ms: f64,
    /// Phase 6 (`--bus N`): whether the bus was on (`CAMPUS_BUS_URL`), the messages
    /// published with confirms per second, the events committed at once per second until
    /// consumed (on) or dispatched (off), and commit → consumed one at a time.
    pub bus_events: usize,
    pub bus_on: bool,
    pub bus_confirms_per_s: f64,
    pub bus_events_per_s: f64,
    pub bus_latency_p50_ms: f64,
    pub bus_latency_p99_ms: f64,
    pub bus_latency_max_ms: f64,
    /// Phase (1b) (`--fairness N`): A's backlog of N no-op tasks, its drain rate and that
    /// rate over (1)'s, and B's tasks (one every 10 ms meanwhile) commit → start.
    pub fairness_backlog: usize,
    pub fairness_drain_per_s: f64,
    pub fairness_drain_ratio: f64,
    pub fairness_b_tasks: usize,
    pub fairness_b_latency_p50_ms: f64,
    pub fairness_b_latency_p99_ms: f64,
    pub fairness_b_latency_max_ms: f64,
}

/// Latency summary of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub n: usize,
}

/// p50 / p99 / max of millisecond samples (nearest rank).
pub fn summarize(mut ms: Vec<f64>) -> Summary {
    if ms.is_empty() {
        return Summary::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        max: ms[ms.len() - 1],
        n: ms.len(),
    }
}

/// The report as a table.
pub fn table(r: &BenchReport) -> String {
    let mut t = String::new();
    let mut row = |what: &str, value: String| t.push_str(&format!("{what:<52} {value}\n"));
    row(
        "task throughput (no-op tasks drained)",
        format!("{:.0} tasks/s ({} tasks)", r.tasks_per_s, r.tasks_drained),
    );
    if r.fairness_backlog > 0 {
        row(
            "fairness: A's backlog drained beside B's tasks",
            format!(
                "{:.0} tasks/s ({} tasks, {:.2} of (1))",
                r.fairness_drain_per_s, r.fairness_backlog, r.fairness_drain_ratio
            ),
        );
        row(
            "fairness: B's task commit → start, A draining",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} tasks)",
                r.fairness_b_latency_p50_ms,
                r.fairness_b_latency_p99_ms,
                r.fairness_b_latency_max_ms,
                r.fairness_b_tasks
            ),
        );
    }
    row(
        "commit limit (same transactions, no daemon)",
        format!("{:.0} events/s", r.commit_limit_events_per_s),
    );
    row(
        "end to end (events, 2 tasks each)",
        format!(
            "{:.0} events/s ({:.2} of the commit limit), {:.0} tasks/s ({} events)",
            r.e2e_events_per_s, r.e2e_ratio, r.e2e_tasks_per_s, r.e2e_events
        ),
    );
    let lat =
        |p50: f64, p99: f64, max: f64| format!("p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    row(
        "task commit → handler start, light load",
        lat(
            r.task_latency_p50_ms,
            r.task_latency_p99_ms,
            r.task_latency_max_ms,
        ),
    );
    row(
        "event commit → task start, light load",
        lat(
            r.event_latency_p50_ms,
            r.event_latency_p99_ms,
            r.event_latency_max_ms,
        ),
    );
    row(
        "task commit → handler start, under load (2)",
        lat(
            r.loaded_task_latency_p50_ms,
            r.loaded_task_latency_p99_ms,
            r.loaded_task_latency_max_ms,
        ),
    );
    row(
        "event commit → task start, under load (2)",
        lat(
            r.loaded_event_latency_p50_ms,
            r.loaded_event_latency_p99_ms,
            r.loaded_event_latency_max_ms,
        ),
    );
    row(
        &format!("POST /auth/reset-password-token at {}/s", r.api_rate_per_s),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms ({} e-mails delivered over SMTP)",
            r.api_reset_token_p50_ms, r.api_reset_token_p99_ms, r.emails_received
        ),
    );
    row(
        &format!("PUT /teacher/…/notes at {}/s", r.api_rate_per_s),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms ({} failed requests)",
            r.api_grade_note_p50_ms, r.api_grade_note_p99_ms, r.api_errors
        ),
    );
    row(
        "API: p99 from the actual send; send lag p99 / max",
        format!(
            "{:.2} ms; {:.2} / {:.2} ms",
            r.api_service_p99_ms, r.api_send_lag_p99_ms, r.api_send_lag_max_ms
        ),
    );
    if r.webhook_events > 0 {
        row(
            "webhook deliveries (events committed at once)",
            format!(
                "{:.0} deliveries/s ({} events)",
                r.webhook_deliveries_per_s, r.webhook_events
            ),
        );
        row(
            "event commit → webhook received, light load",
            lat(
                r.webhook_latency_p50_ms,
                r.webhook_latency_p99_ms,
                r.webhook_latency_max_ms,
            ),
        );
    }
    if r.bus_events > 0 && r.bus_on {
        row(
            "bus: messages published with confirms",
            format!(
                "{:.0} messages/s ({} messages)",
                r.bus_confirms_per_s, r.bus_events
            ),
        );
        row(
            "bus: events committed at once → consumed",
            format!(
                "{:.0} events/s ({} events)",
                r.bus_events_per_s, r.bus_events
            ),
        );
        row(
            "bus: event commit → consumed, light load",
            lat(
                r.bus_latency_p50_ms,
                r.bus_latency_p99_ms,
                r.bus_latency_max_ms,
            ),
        );
    } else if r.bus_events > 0 {
        row(
            "bus off: events committed at once → dispatched",
            format!(
                "{:.0} events/s ({} events)",
                r.bus_events_per_s, r.bus_events
            ),
        );
    }
    row(
        "daemon peak RSS during (1) and (2)",
        format!("{:.1} MB", r.daemon_peak_rss_mb),
    );
    if r.history_tasks > 0 {
        let archive = match r.archive {
            crate::cli::HistoryArchive::Keep => "kept in the live tables".to_string(),
            crate::cli::HistoryArchive::Before => {
                format!("archived before (1) in {:.1} s", r.archive_seconds)
            }
            crate::cli::HistoryArchive::During => {
                format!("archived during (1) in {:.1} s", r.archive_seconds)
            }
        };
        row(
            "history (finished tasks, two per event)",
            format!("{} tasks, {archive}", r.history_tasks),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s = summarize((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max, s.n), (50.0, 99.0, 100.0, 100));
        let one = summarize(vec![3.0]);
        assert_eq!((one.p50, one.p99), (3.0, 3.0));
        assert_eq!(summarize(Vec::new()).n, 0);
    }
}
