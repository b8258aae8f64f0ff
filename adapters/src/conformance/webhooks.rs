//! Conformance of the webhook store: subscriptions scoped by institution (one per URL, a
//! cap), matching, rotation, the attempt log with its failing streak, and deliveries listed
//! from their attempts.

use super::*;
use campus_core::events::SealedSecret;
use campus_core::ids::{InstitutionId, TaskId, UserId, WebhookId};
use campus_core::user::{Institution, PasswordHash, User};
use campus_core::values::{Email, Name, Role};
use campus_core::Timestamp;

async fn institution(e: &Engine, id: u128) -> InstitutionId {
    let mut a = User::register(
        UserId(100 + id),
        Some(InstitutionId(id)),
        Role::Academic,
        Name::parse("n", "Ana").unwrap(),
        Email::parse(&format!("ana{id}@hooks.example")).unwrap(),
        PasswordHash("h".into()),
    )
    .unwrap();
    let mut i =
        Institution::create(InstitutionId(id), Name::parse("n", "Hooks").unwrap(), &a).unwrap();
    e.users
        .create_institution(&mut i, &mut a, &EventContext::default())
        .await
        .unwrap();
    InstitutionId(id)
}

fn new(inst: InstitutionId, url: &str, types: &[&str]) -> NewSubscription {
    NewSubscription {
        institution_id: inst,
        url: url.into(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        description: "d".into(),
        enabled: true,
        secret: SealedSecret(format!("sealed:{url}")),
    }
}

fn attempt(
    sub: WebhookId,
    inst: InstitutionId,
    task: u128,
    n: u32,
    status: u16,
) -> DeliveryAttempt {
    DeliveryAttempt {
        task_id: TaskId(task),
        subscription_id: sub,
        institution_id: inst,
        message_id: format!("m{task}"),
        event_type: "ClassCreated".into(),
        attempt: n,
        status: Some(status),
        duration: Duration::from_millis(12),
        response_excerpt: "ok".into(),
        error: None,
    }
}

pub async fn webhook_subscriptions_are_scoped_and_deliveries_logged(e: &Engine) {
    let w = &e.webhooks;
    let (a, b) = (institution(e, 1).await, institution(e, 2).await);
    let one = w
        .create_subscription(&new(a, "https://a.example/1", &["ClassCreated"]), 2)
        .await
        .unwrap();
    let two = w
        .create_subscription(
            &new(
                a,
                "https://a.example/2",
                &["ClassCreated", "StudentEnrolled"],
            ),
            2,
        )
        .await
        .unwrap();
    // One per URL per institution; at most the cap; another institution may reuse the URL.
    let dup = w
        .create_subscription(&new(b, "https://a.example/1", &["ClassCreated"]), 2)
        .await;
    assert!(dup.is_ok(), "{dup:?}");
    let same = w
        .create_subscription(&new(a, "https://a.example/1", &["ClassCreated"]), 3)
        .await;
    assert!(matches!(same, Err(PortError::Conflict(_))), "{same:?}");
    let full = w
        .create_subscription(&new(a, "https://a.example/3", &["ClassCreated"]), 2)
        .await;
    assert!(matches!(full, Err(PortError::Conflict(_))), "{full:?}");
    let ids: Vec<WebhookId> = w
        .subscriptions(a)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, [one.id, two.id], "oldest first");
    assert!(matches!(
        w.subscription(b, one.id).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        w.delete_subscription(b, one.id).await,
        Err(PortError::NotFound(_))
    ));

    // Matching: enabled subscriptions of the institution to the type.
    assert_eq!(w.matching(a, "StudentEnrolled").await.unwrap(), [two.id]);
    let mut both = w.matching(a, "ClassCreated").await.unwrap();
    both.sort();
    assert_eq!(both, [one.id, two.id]);
    let off = SubscriptionChange {
        url: "https://a.example/2".into(),
        event_types: vec!["StudentEnrolled".into()],
        description: "off".into(),
        enabled: false,
    };
    w.update_subscription(a, two.id, &off).await.unwrap();
    assert_eq!(w.matching(a, "ClassCreated").await.unwrap(), [one.id]);
    assert!(w.matching(a, "StudentEnrolled").await.unwrap().is_empty());
    let mut pairs = w.subscribed_types().await.unwrap();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            (a, "ClassCreated".to_string()),
            (b, "ClassCreated".to_string())
        ]
    );

    // Rotation keeps the old secret beside the new one until the instant given.
    let until = Timestamp(4_000_000_000_000);
    w.rotate_secret(a, one.id, &SealedSecret("new".into()), until)
        .await
        .unwrap();
    let target = w.target(one.id).await.unwrap().unwrap();
    assert_eq!(target.secret, SealedSecret("new".into()));
    assert_eq!(
        target.previous_secret,
        Some((SealedSecret("sealed:https://a.example/1".into()), until))
    );

    // The log: a failing streak starts at the first failure and ends with a success.
    let first = w
        .record_attempt(&attempt(one.id, a, 10, 1, 500))
        .await
        .unwrap();
    assert!(first.is_some());
    e.harness.advance(Duration::from_millis(20)).await;
    let second = w
        .record_attempt(&attempt(one.id, a, 10, 2, 503))
        .await
        .unwrap();
    assert_eq!(second, first, "the streak keeps its start");
    assert_eq!(
        w.record_attempt(&attempt(one.id, a, 10, 3, 204))
            .await
            .unwrap(),
        None
    );
    w.record_attempt(&attempt(one.id, a, 20, 1, 410))
        .await
        .unwrap();
    let all = DeliveryQuery {
        limit: 10,
        ..DeliveryQuery::default()
    };
    let listed = w.deliveries(a, one.id, &all).await.unwrap();
    let summary: Vec<(u128, u32, Option<u16>, DeliveryState)> = listed
        .iter()
        .map(|d| (d.task_id.0, d.attempts, d.last_status, d.state))
        .collect();
    assert_eq!(
        summary,
        [
            (20, 1, Some(410), DeliveryState::Failed),
            (10, 3, Some(204), DeliveryState::Succeeded)
        ],
        "newest first"
    );
    let failed = DeliveryQuery {
        state: Some(DeliveryState::Failed),
        limit: 10,
        ..DeliveryQuery::default()
    };
    assert_eq!(w.deliveries(a, one.id, &failed).await.unwrap().len(), 1);
    let older = DeliveryQuery {
        before: Some(TaskId(20)),
        limit: 10,
        ..DeliveryQuery::default()
    };
    assert_eq!(
        w.deliveries(a, one.id, &older).await.unwrap()[0].task_id,
        TaskId(10)
    );
    assert!(
        w.deliveries(b, one.id, &all).await.unwrap().is_empty(),
        "scoped"
    );
    let attempts: Vec<Option<u16>> = w
        .delivery_attempts(a, one.id, TaskId(10))
        .await
        .unwrap()
        .iter()
        .map(|l| l.attempt.status)
        .collect();
    assert_eq!(attempts, [Some(500), Some(503), Some(204)]);
    assert!(matches!(
        w.delivery_attempts(b, one.id, TaskId(10)).await,
        Err(PortError::NotFound(_))
    ));

    // Disabling says why; deleting ends matching, and the log stays.
    w.disable(one.id, "410 Gone").await.unwrap();
    let s = w.subscription(a, one.id).await.unwrap();
    assert_eq!(
        (s.enabled, s.disabled_reason.as_deref()),
        (false, Some("410 Gone"))
    );
    w.delete_subscription(a, one.id).await.unwrap();
    assert_eq!(w.target(one.id).await.unwrap(), None);
    assert_eq!(
        w.delivery_attempts(a, one.id, TaskId(10))
            .await
            .unwrap()
            .len(),
        3
    );
}
