//! `campus status`: the queues at a glance, from the same read side as the admin overview:
//! counts by status and by type, the oldest waiting items, the due backlog by priority (in
//! all and for the five institutions with the most), the last hour's failures, per task type
//! the last hour's outcomes and handler latency, the daemons heard from (which one leads)
//! and the last archive run. As an aligned table (colour on a terminal) or one JSON object.

use crate::engine::ALIVE_WITHIN;
use campus_core::engine::Priority;
use campus_core::Timestamp;
use campus_ports::{
    Archive, ArchiveRun, DaemonRoster, DaemonSeen, EngineLog, EngineSummary, InstitutionBacklog,
    PriorityCounts, StatusCount, SummaryQuery, TypeStats,
};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Daemons silent for longer than this are left out of the report.
const SILENT_SHOWN: Duration = Duration::from_secs(600);

/// How many institutions the due backlog lists: those with the most due tasks.
const BACKLOG_INSTITUTIONS_SHOWN: usize = 5;

/// What `campus status` shows.
pub struct StatusReport {
    pub summary: EngineSummary,
    /// The last hour, by task type.
    pub types: Vec<TypeStats>,
    /// Daemons heard from in the last ten minutes, the leader first; those silent for longer
    /// than [`ALIVE_WITHIN`] are shown as silent.
    pub daemons: Vec<DaemonSeen>,
    pub last_archive: Option<ArchiveRun>,
}

/// `(status, count, approximate)` of each count.
fn counts<S: Copy>(
    v: &[StatusCount<S>],
    name: fn(S) -> &'static str,
) -> Vec<(&'static str, i64, bool)> {
    v.iter()
        .map(|c| (name(c.status), c.count, c.approximate))
        .collect()
}

/// Each priority's count and their total, by name.
fn priority_counts(c: &PriorityCounts) -> Map<String, Value> {
    let mut counts: Map<String, Value> = Priority::ALL
        .into_iter()
        .map(|p| (p.as_str().to_string(), c.get(p).into()))
        .collect();
    counts.insert("total".into(), c.total().into());
    counts
}

/// An institution of the backlog by its name, else its id.
fn backlog_name(b: &InstitutionBacklog) -> String {
    match (&b.name, b.institution_id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => uuid::Uuid::from_u128(id.0).to_string(),
        (None, None) => "(no institution)".into(),
    }
}

fn alive(d: &DaemonSeen) -> bool {
    d.silent_for <= ALIVE_WITHIN
}

impl StatusReport {
    /// Reads the report now.
    pub async fn read(
        log: &dyn EngineLog,
        archive: &dyn Archive,
        roster: &dyn DaemonRoster,
    ) -> Result<StatusReport, String> {
        let hour_ago = Timestamp(chrono::Utc::now().timestamp_millis() - 3_600_000);
        Ok(StatusReport {
            daemons: roster
                .heard_within(SILENT_SHOWN)
                .await
                .map_err(|e| e.to_string())?,
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

    /// The leader among the daemons alive, if one is.
    pub fn leader(&self) -> Option<&DaemonSeen> {
        self.daemons.iter().find(|d| d.beat.leader && alive(d))
    }

    /// The institutions of the due backlog shown, the most due tasks first.
    fn backlog_institutions(&self) -> &[InstitutionBacklog] {
        let listed = &self.summary.due_backlog.institutions;
        &listed[..listed.len().min(BACKLOG_INSTITUTIONS_SHOWN)]
    }

    fn due_backlog_json(&self) -> Value {
        let mut backlog = priority_counts(&self.summary.due_backlog.total);
        let institutions = self.backlog_institutions().iter().map(|b| {
            let mut row = priority_counts(&b.due);
            row.insert(
                "institution_id".into(),
                json!(b.institution_id.map(|i| uuid::Uuid::from_u128(i.0))),
            );
            row.insert("name".into(), json!(b.name));
            Value::Object(row)
        });
        backlog.insert("institutions".into(), institutions.collect());
        Value::Object(backlog)
    }

    /// The header and the rows of the due backlog's table: an institution, then each
    /// priority's count and the total.
    fn backlog_rows(&self) -> (String, Vec<String>) {
        let row = |name: &str, cells: Vec<String>| {
            let cells: Vec<String> = cells.iter().map(|c| format!("{c:>11}")).collect();
            format!("{name:<34} {}", cells.join(" "))
        };
        let columns = Priority::ALL.map(|p| p.to_string());
        let header = row(
            &format!("due backlog (top {BACKLOG_INSTITUTIONS_SHOWN} institutions)"),
            columns.into_iter().chain(["total".into()]).collect(),
        );
        let rows = self.backlog_institutions().iter().map(|b| {
            let counts = Priority::ALL.map(|p| b.due.get(p)).into_iter();
            let cells = counts.chain([b.due.total()]).map(|n| n.to_string());
            row(&backlog_name(b), cells.collect())
        });
        (header, rows.collect())
    }

    fn task_counts(&self) -> Vec<(&'static str, i64, bool)> {
        counts(&self.summary.tasks_by_status, |s| s.as_str())
    }

    fn event_counts(&self) -> Vec<(&'static str, i64, bool)> {
        counts(&self.summary.events_by_status, |s| s.as_str())
    }

    pub fn json(&self) -> Value {
        let s = &self.summary;
        let counts = |v: Vec<(&str, i64, bool)>| -> Vec<Value> {
            v.into_iter()
                .map(|(status, count, approximate)| json!({"status": status, "count": count, "approximate": approximate}))
                .collect()
        };
        json!({
            "tasks_by_status": counts(self.task_counts()),
            "events_by_status": counts(self.event_counts()),
            "tasks_by_type": s.tasks_by_type.iter()
                .map(|(t, st, n)| json!({"task_type": t, "status": st.as_str(), "count": n}))
                .collect::<Vec<_>>(),
            "daemons": self.daemons.iter().map(|d| json!({
                "worker_id": d.beat.worker_id,
                "version": d.beat.version,
                "started_at": at(d.beat.started_at),
                "concurrency": d.beat.concurrency,
                "running": d.beat.running,
                "leader": d.beat.leader,
                "listening": d.beat.listening,
                "alive": alive(d),
                "silent_for_s": d.silent_for.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "leader": self.leader().map(|d| d.beat.worker_id.as_str()),
            "oldest_pending_task_age_s": s.oldest_pending_task_age_s,
            "oldest_pending_event_age_s": s.oldest_pending_event_age_s,
            "due_backlog": self.due_backlog_json(),
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
            counts(self.task_counts())
        ));
        line(format!(
            "{} {}",
            bold("events:"),
            counts(self.event_counts())
        ));
        let age = |a: Option<f64>| a.map_or("none".to_string(), |a| format!("{a:.1} s"));
        line(format!(
            "oldest waiting task: {}, event: {}",
            age(s.oldest_pending_task_age_s),
            age(s.oldest_pending_event_age_s)
        ));
        let due = &s.due_backlog.total;
        let by_priority: Vec<String> = Priority::ALL
            .into_iter()
            .map(|p| format!("{p} {}", due.get(p)))
            .collect();
        line(format!(
            "due backlog: {} ({} in all)",
            by_priority.join(", "),
            due.total()
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
        let (header, rows) = self.backlog_rows();
        line(bold(&header));
        for row in rows {
            line(row);
        }
        if self.backlog_institutions().is_empty() {
            line("(no task due)".into());
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
        line(String::new());
        line(bold(&format!(
            "{:<40} {:<8} {:>7} {:>9} {:>9}  {}",
            "daemon", "version", "running", "heard", "LISTEN", "role"
        )));
        for d in &self.daemons {
            let b = &d.beat;
            let row = format!(
                "{:<40} {:<8} {:>7} {:>7.1} s {:>9}  {}",
                b.worker_id,
                b.version,
                format!("{}/{}", b.running, b.concurrency),
                d.silent_for.as_secs_f64(),
                if b.listening { "up" } else { "down" },
                match (alive(d), b.leader) {
                    (false, _) => "silent",
                    (true, true) => "leader",
                    (true, false) => "worker",
                }
            );
            line(if alive(d) && b.listening {
                row
            } else {
                red(row)
            });
        }
        if self.daemons.is_empty() {
            line(red("(no daemon heard from in the last ten minutes)".into()));
        }
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
