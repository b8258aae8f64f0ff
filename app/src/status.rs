//! `campus status`: the queues at a glance, from the same read side as the admin overview:
//! counts by status and by type, the oldest waiting items, the last hour's failures, per task
//! type the last hour's outcomes and handler latency, and the last archive run. As an aligned
//! table (colour on a terminal) or one JSON object.

use campus_core::Timestamp;
use campus_ports::{Archive, ArchiveRun, EngineLog, EngineSummary, SummaryQuery, TypeStats};
use serde_json::{json, Value};

/// What `campus status` shows.
pub struct StatusReport {
    pub summary: EngineSummary,
    /// The last hour, by task type.
    pub types: Vec<TypeStats>,
    pub last_archive: Option<ArchiveRun>,
}

impl StatusReport {
    /// Reads the report now.
    pub async fn read(log: &dyn EngineLog, archive: &dyn Archive) -> Result<StatusReport, String> {
        let hour_ago = Timestamp(chrono::Utc::now().timestamp_millis() - 3_600_000);
        Ok(StatusReport {
            summary: log
                .summary(&SummaryQuery::default(), None)
                .await
                .map_err(|e| e.to_string())?,
            types: log
                .type_stats(hour_ago, None)
                .await
                .map_err(|e| e.to_string())?,
            last_archive: archive.runs(1).await.map_err(|e| e.to_string())?.pop(),
        })
    }

    /// Task attempts that failed in the last hour (retrying or dead).
    pub fn failed_last_hour(&self) -> i64 {
        self.summary.per_minute.iter().map(|m| m.tasks_failed).sum()
    }

    pub fn json(&self) -> Value {
        let s = &self.summary;
        let counts = |v: Vec<(&str, i64, bool)>| -> Vec<Value> {
            v.into_iter()
                .map(|(status, count, approximate)| json!({"status": status, "count": count, "approximate": approximate}))
                .collect()
        };
        json!({
            "tasks_by_status": counts(s.tasks_by_status.iter().map(|c| (c.status.as_str(), c.count, c.approximate)).collect()),
            "events_by_status": counts(s.events_by_status.iter().map(|c| (c.status.as_str(), c.count, c.approximate)).collect()),
            "tasks_by_type": s.tasks_by_type.iter()
                .map(|(t, st, n)| json!({"task_type": t, "status": st.as_str(), "count": n}))
                .collect::<Vec<_>>(),
            "oldest_pending_task_age_s": s.oldest_pending_task_age_s,
            "oldest_pending_event_age_s": s.oldest_pending_event_age_s,
            "failed_last_hour": self.failed_last_hour(),
            "failure_rate_last_hour": s.failure_rate,
            "types_last_hour": self.types.iter().map(|t| json!({
                "task_type": t.task_type,
                "succeeded": t.succeeded,
                "failed": t.failed,
                "failure_rate": t.failure_rate(),
                "p50_ms": t.p50_ms,
                "p95_ms": t.p95_ms,
            })).collect::<Vec<_>>(),
            "last_archive": self.last_archive.as_ref().map(|r| json!({
                "due": at(r.due),
                "finished": at(r.finished),
                "tasks": r.moved.tasks,
                "events": r.moved.events,
            })),
        })
    }

    /// The aligned table; `colour` adds ANSI colours (failures in red).
    pub fn table(&self, colour: bool) -> String {
        let red = |s: String| {
            if colour {
                format!("\x1b[31m{s}\x1b[0m")
            } else {
                s
            }
        };
        let bold = |s: &str| {
            if colour {
                format!("\x1b[1m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let s = &self.summary;
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        let counts = |v: Vec<(&str, i64, bool)>| {
            v.into_iter()
                .map(|(st, n, approx)| format!("{st} {}{n}", if approx { "~" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        line(format!(
            "{} {}",
            bold("tasks: "),
            counts(
                s.tasks_by_status
                    .iter()
                    .map(|c| (c.status.as_str(), c.count, c.approximate))
                    .collect()
            )
        ));
        line(format!(
            "{} {}",
            bold("events:"),
            counts(
                s.events_by_status
                    .iter()
                    .map(|c| (c.status.as_str(), c.count, c.approximate))
                    .collect()
            )
        ));
        let age = |a: Option<f64>| a.map_or("none".to_string(), |a| format!("{a:.1} s"));
        line(format!(
            "oldest waiting task: {}, event: {}",
            age(s.oldest_pending_task_age_s),
            age(s.oldest_pending_event_age_s)
        ));
        let failed = self.failed_last_hour();
        let failed = format!(
            "failed attempts in the last hour: {failed} ({:.1} % of finished)",
            s.failure_rate * 100.0
        );
        line(if self.failed_last_hour() > 0 {
            red(failed)
        } else {
            failed
        });
        line(String::new());
        line(bold(&format!(
            "{:<34} {:>9} {:>7} {:>8} {:>10} {:>10}",
            "task type (last hour)", "succeeded", "failed", "fail %", "p50 ms", "p95 ms"
        )));
        let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
        for t in &self.types {
            let row = format!(
                "{:<34} {:>9} {:>7} {:>8.1} {:>10} {:>10}",
                t.task_type,
                t.succeeded,
                t.failed,
                t.failure_rate() * 100.0,
                ms(t.p50_ms),
                ms(t.p95_ms)
            );
            line(if t.failed > 0 { red(row) } else { row });
        }
        if self.types.is_empty() {
            line("(no tasks in the last hour)".into());
        }
        line(String::new());
        let waiting: Vec<String> = s
            .tasks_by_type
            .iter()
            .map(|(t, st, n)| format!("{t} {} {n}", st.as_str()))
            .collect();
        line(format!(
            "not succeeded, by type: {}",
            if waiting.is_empty() {
                "none".to_string()
            } else {
                waiting.join(", ")
            }
        ));
        line(match &self.last_archive {
            Some(r) => format!(
                "last archive run: due {}, finished {}, {} tasks and {} events moved",
                at(r.due),
                at(r.finished),
                r.moved.tasks,
                r.moved.events
            ),
            None => "last archive run: none yet".into(),
        });
        out
    }
}

fn at(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}
