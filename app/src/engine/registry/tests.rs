//! Unit tests of the registry: planning, options, validation, claimable types.

use super::*;
use campus_core::ids::EventId;
use campus_core::Timestamp;

struct Nothing;
#[async_trait]
impl TaskHandler for Nothing {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        Ok(())
    }
}

fn event(t: &str) -> EventEnvelope<Payload> {
    EventEnvelope {
        id: EventId(1),
        event_type: t.into(),
        aggregate_type: "A".into(),
        aggregate_id: 1,
        institution_id: None,
        payload: r#"{"x":1}"#.into(),
        occurred_at: Timestamp(0),
        correlation_id: None,
        reprocessed_from: None,
    }
}

#[test]
fn plans_one_task_per_handler() {
    let r = Registry::new(5)
        .on_event("Happened", "first", "do_a")
        .on_event_with("Happened", "second", "do_b", |_| Ok("{}".into()))
        .task_arc("do_a", Arc::new(Nothing), Some(2))
        .task("do_b", Nothing);
    let tasks = r.plan(&event("Happened")).unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].payload, r#"{"x":1}"#);
    assert_eq!(tasks[1].task_type, "do_b");
    assert!(r.plan(&event("Other")).unwrap().is_empty());
    assert_eq!(r.max_attempts("do_a"), 2);
    assert_eq!(r.max_attempts("do_b"), 5);
}

#[test]
fn a_failing_plan_names_its_handler() {
    let r = Registry::new(5).on_event_with("Happened", "picky", "t", |_| Err("bad payload".into()));
    let err = r.plan(&event("Happened")).unwrap_err();
    assert_eq!(
        err,
        PlanFailure {
            handler: "picky".into(),
            message: "bad payload".into()
        }
    );
}

#[test]
#[should_panic(expected = "registered twice")]
fn duplicate_handlers_are_refused() {
    let _ = Registry::new(5)
        .on_event("E", "h", "t")
        .on_event("E", "h", "t");
}

#[test]
fn validation_names_the_route_of_an_unknown_event_type() {
    let r = Registry::new(5)
        .on_event("InstitutionCreatd", "seed", "seed_demo_data")
        .task("seed_demo_data", Nothing);
    let err = r.validate().unwrap_err();
    assert!(matches!(err, RegistryError::UnknownEvent { .. }));
    let message = err.to_string();
    assert!(
        message.contains("InstitutionCreatd → seed → seed_demo_data"),
        "{message}"
    );
    // Declared as appended by tools, the same route is fine.
    let r = r.external_event("InstitutionCreatd");
    assert_eq!(r.validate(), Ok(()));
}

#[test]
fn validation_names_the_route_to_a_task_type_without_handler() {
    let r = Registry::new(5)
        .route(EventType::InstitutionCreated, "seed", "seed_demo_dat")
        .task("seed_demo_data", Nothing);
    let err = r.validate().unwrap_err();
    assert_eq!(
        err,
        RegistryError::NoTaskHandler {
            event_type: "InstitutionCreated".into(),
            handler: "seed".into(),
            task_type: "seed_demo_dat".into(),
        }
    );
    assert!(err
        .to_string()
        .contains("no handler is registered for task type seed_demo_dat"));
}

#[test]
fn claims_take_only_handled_types_within_their_limits() {
    let limited = TaskOptions {
        concurrency: Some(2),
        ..TaskOptions::default()
    };
    let r = Registry::new(5)
        .task("b", Nothing)
        .task("a", Nothing)
        .task_with("slow", Arc::new(Nothing), limited);
    let idle = r.claim_types(|_| 0);
    assert_eq!(idle.any, ["a", "b"]);
    assert_eq!(idle.capped, [("slow".to_string(), 2)]);
    let one = r.claim_types(|t| usize::from(t == "slow"));
    assert_eq!(one.capped, [("slow".to_string(), 1)]);
    let full = r.claim_types(|t| if t == "slow" { 2 } else { 0 });
    assert!(full.capped.is_empty(), "a type at its limit is not claimed");
    assert_eq!(r.options("a").timeout, DEFAULT_TIMEOUT);
    assert_eq!(r.task_types()[0].1.max_attempts, Some(5));
}
