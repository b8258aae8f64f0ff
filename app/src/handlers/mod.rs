//! Event handlers and the tasks they plan — the routing table of the three seed flows:
//!
//! | event                       | handler              | task type                      | runs                                  |
//! |-----------------------------|----------------------|--------------------------------|---------------------------------------|
//! | `ResetPasswordTokenCreated` | `email_reset_link`   | `send_reset_password_email`    | [`reset_email::SendResetPasswordEmail`] |
//! | `ExamGradeNoteAdded`        | `notify_student`     | `notify_student_of_grade_note` | [`grade_note::NotifyStudentOfGradeNote`] |
//! | `InstitutionCreated`        | `seed_demo_data`     | `seed_demo_data`               | [`demo_seed::SeedDemoData`]           |
//! | `BenchmarkEventRecorded`    | `bench_first`, `bench_second` | `noop`                | [`noop::Noop`]                        |
//!
//! The probe event `BenchmarkEventRecorded` is appended by `campus bench` (no aggregate
//! records it) and fans out to two `noop` tasks; benchmarks and failure drills also enqueue
//! `noop` directly.
//!
//! To react to an event: write a [`crate::engine::Handler`] (its task type is its
//! `TASK_TYPE`, its input a payload type of `campus_ports::payloads`), then add one `route`
//! and one `handle` line in [`register`]. The engine does not change; `Registry::validate`
//! refuses a route whose event no aggregate records or whose task type has no handler.

pub mod bus;
pub mod demo_seed;
pub mod grade_note;
pub mod noop;
pub mod reset_email;
pub mod webhooks;

use crate::engine::{Handler, Registry};
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
    pub webhooks: webhooks::WebhookDeps,
    /// The event bus (`CAMPUS_BUS_URL`); without it nothing is published.
    pub bus: Option<Arc<dyn campus_ports::EventBus>>,
}

/// The probe event of `campus bench`: two handlers, each planning a `noop` task.
pub const BENCHMARK_EVENT: &str = "BenchmarkEventRecorded";

/// Registers the built-in handlers and tasks.
pub fn register(registry: Registry, deps: &HandlerDeps) -> Registry {
    use campus_core::events::EventType;
    use demo_seed::SeedDemoData as DemoSeed;
    use grade_note::NotifyStudentOfGradeNote as GradeNote;
    use reset_email::SendResetPasswordEmail as ResetEmail;
    let registry = registry
        .route(
            EventType::ResetPasswordTokenCreated,
            "email_reset_link",
            ResetEmail::TASK_TYPE,
        )
        .handle(ResetEmail::new(deps))
        .route(
            EventType::ExamGradeNoteAdded,
            "notify_student",
            GradeNote::TASK_TYPE,
        )
        .handle(GradeNote::new(deps))
        .route(
            EventType::InstitutionCreated,
            "seed_demo_data",
            DemoSeed::TASK_TYPE,
        )
        .handle(DemoSeed::new(deps))
        .handle(noop::Noop);
    // Every subscribable event may be delivered to webhooks.
    let registry = webhooks::subscribable().fold(registry, |r, event| {
        let subscribed = deps.webhooks.subscribed.clone();
        r.on_event_when(
            event.as_str(),
            "webhooks",
            webhooks::FanOutWebhooks::TASK_TYPE,
            move |e| plan_webhooks(&subscribed, e),
        )
    });
    // With a bus, the same events are published to it, one aggregate's in their order.
    let registry = match &deps.bus {
        Some(bus) => webhooks::subscribable()
            .fold(registry, |r, event| {
                r.on_event_in_order(event.as_str(), "bus", bus::PublishEvent::TASK_TYPE, |e| {
                    let message = webhooks::WebhookMessage::of_event(e)?;
                    serde_json::to_string(&message).map_err(|e| e.to_string())
                })
            })
            .handle(bus::PublishEvent(bus.clone())),
        None => registry,
    };
    registry
        .handle(webhooks::FanOutWebhooks(deps.webhooks.clone()))
        .handle(webhooks::DeliverWebhook(deps.webhooks.clone()))
        .external_event(BENCHMARK_EVENT)
        .on_event(BENCHMARK_EVENT, "bench_first", noop::TASK_TYPE)
        .on_event(BENCHMARK_EVENT, "bench_second", noop::TASK_TYPE)
}

/// The `fan_out_webhooks` task of an event (its payload the message receivers get), when
/// a subscription of its institution may want it.
fn plan_webhooks(
    subscribed: &webhooks::SubscribedTypes,
    event: &campus_core::engine::EventEnvelope<campus_ports::Payload>,
) -> Result<Option<campus_ports::Payload>, String> {
    let wanted = event
        .institution_id
        .is_some_and(|i| subscribed.contains(i, &event.event_type));
    if !wanted {
        return Ok(None);
    }
    let message = webhooks::WebhookMessage::of_event(event)?;
    serde_json::to_string(&message)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The event context of writes a task makes: the task's correlation id.
pub(crate) fn context(task: &campus_ports::ClaimedTask) -> EventContext {
    EventContext {
        correlation_id: task.correlation_id.clone(),
        // Handlers are system actors.
        actor_id: None,
    }
}
