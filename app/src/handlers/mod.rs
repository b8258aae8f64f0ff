//! Event handlers and the tasks they plan — the routing table of the three seed flows:
//!
//! | event                       | handler              | task type                      | runs                                  |
//! |-----------------------------|----------------------|--------------------------------|---------------------------------------|
//! | `ResetPasswordTokenCreated` | `email_reset_link`   | `send_reset_password_email`    | [`reset_email::SendResetPasswordEmail`] |
//! | `ExamGradeNoteAdded`        | `notify_student`     | `notify_student_of_grade_note` | [`grade_note::NotifyStudentOfGradeNote`] |
//! | `InstitutionCreated`        | `seed_demo_data`     | `seed_demo_data`               | [`demo_seed::SeedDemoData`]           |
//!
//! The `noop` task does nothing; benchmarks and failure drills enqueue it directly, and the
//! probe event `BenchmarkEventRecorded` fans out to two of them (`campus bench` measures the
//! two-hop path with it).
//!
//! To react to another event: write a `TaskHandler`, then add one `on_event` and one `task`
//! line in [`register`]. The engine does not change.

pub mod demo_seed;
pub mod grade_note;
pub mod noop;
pub mod reset_email;

use crate::engine::{Registry, TaskError};
use campus_ports::{
    AcademicRepository, Clock, DemoDataRepository, EventContext, IdGenerator, Mailer,
    NotificationRepository, PasswordHasher, SentEmailLog, TokenVault, UserRepository,
};
use std::sync::Arc;

/// What the built-in task handlers need.
#[derive(Clone)]
pub struct HandlerDeps {
    pub users: Arc<dyn UserRepository>,
    pub academic: Arc<dyn AcademicRepository>,
    pub notifications: Arc<dyn NotificationRepository>,
    pub demo: Arc<dyn DemoDataRepository>,
    pub sent_emails: Arc<dyn SentEmailLog>,
    pub mailer: Arc<dyn Mailer>,
    pub vault: Arc<dyn TokenVault>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    /// Base of links in e-mails, without a trailing slash.
    pub public_url: String,
    /// Password of demo users (`CAMPUS_DEMO_PASSWORD`); without it they cannot log in.
    pub demo_password: Option<String>,
}

/// The probe event of `campus bench`: two handlers, each planning a `noop` task.
pub const BENCHMARK_EVENT: &str = "BenchmarkEventRecorded";

/// Registers the built-in handlers and tasks.
pub fn register(registry: Registry, deps: &HandlerDeps) -> Registry {
    registry
        .on_event(
            "ResetPasswordTokenCreated",
            "email_reset_link",
            reset_email::TASK_TYPE,
        )
        .task(
            reset_email::TASK_TYPE,
            reset_email::SendResetPasswordEmail::new(deps),
        )
        .on_event(
            "ExamGradeNoteAdded",
            "notify_student",
            grade_note::TASK_TYPE,
        )
        .task(
            grade_note::TASK_TYPE,
            grade_note::NotifyStudentOfGradeNote::new(deps),
        )
        .on_event("InstitutionCreated", "seed_demo_data", demo_seed::TASK_TYPE)
        .task(demo_seed::TASK_TYPE, demo_seed::SeedDemoData::new(deps))
        .task(noop::TASK_TYPE, noop::Noop)
        .on_event(BENCHMARK_EVENT, "bench_first", noop::TASK_TYPE)
        .on_event(BENCHMARK_EVENT, "bench_second", noop::TASK_TYPE)
}

/// Parses a task payload; a payload that does not parse will never parse, so it is permanent.
pub(crate) fn payload<T: serde::de::DeserializeOwned>(
    task: &campus_ports::ClaimedTask,
) -> Result<T, TaskError> {
    serde_json::from_str(&task.payload)
        .map_err(|e| TaskError::permanent(format!("invalid payload: {e}")))
}

/// The event context of writes a task makes: the task's correlation id.
pub(crate) fn context(task: &campus_ports::ClaimedTask) -> EventContext {
    EventContext {
        correlation_id: task.correlation_id.clone(),
    }
}
