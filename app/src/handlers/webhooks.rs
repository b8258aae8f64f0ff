//! Webhooks through the engine: an event of a subscribable type that some enabled
//! subscription of its institution asks for (per [`SubscribedTypes`]) plans one
//! `fan_out_webhooks` task (its payload the message receivers get), which enqueues one
//! `deliver_webhook` task per enabled subscription of the event's institution to its type;
//! each delivery is signed per the Standard Webhooks specification and retried on the
//! webhook schedule (or a receiver's `Retry-After`). Both are tasks like any other, so
//! retries, dead letters, leases, reprocessing and the admin screen apply unchanged.

use crate::engine::{Handler, TaskError, TaskOptions};
use async_trait::async_trait;
use campus_adapters::webhooks::signature::signature_header;
use campus_core::engine::EventEnvelope;
use campus_core::events::EventType;
use campus_core::ids::NotificationId;
use campus_core::ids::{InstitutionId, WebhookId};
use campus_core::notification::Notification;
use campus_core::values::Role;
use campus_core::Timestamp;
use campus_ports::{
    ClaimedTask, Clock, DeliveryAttempt, IdGenerator, NewTask, NotificationRepository, PageRequest,
    Payload, PortError, TaskQueue, TokenVault, UserRepository, WebhookRequest, WebhookSender,
    WebhookStore,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The event types institutions may subscribe to: every type an aggregate records but
/// `AdmCreated` (no institution) and `ResetPasswordTokenCreated` (it carries a sealed
/// secret; `PasswordChanged` tells the same story without it).
pub fn subscribable() -> impl Iterator<Item = EventType> {
    EventType::ALL.into_iter().filter(|t| {
        !matches!(
            t,
            EventType::AdmCreated | EventType::ResetPasswordTokenCreated
        )
    })
}

/// The type of the ping `POST /academic/webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "WebhookTest";

/// Largest message body delivered; a bigger event fails its fan-out (permanently).
pub const MAX_BODY: usize = 256 * 1024;

/// The longest `Retry-After` honoured (a receiver cannot park a delivery for a year).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Subscriptions an institution may have.
pub const MAX_SUBSCRIPTIONS: u32 = 20;

/// Which `(institution, event type)` pairs have an enabled subscription: the dispatcher's
/// plan reads it (it cannot query), so events nobody subscribed to cost no task. Until its
/// first load it answers yes to everything (the fan-out then finds nothing); it is
/// refreshed every [`REFRESH_EVERY`] and updated at once by this process's own subscription
/// changes, so a subscription made through another process applies to the events
/// dispatched from about a second later.
#[derive(Clone, Default)]
pub struct SubscribedTypes(Arc<RwLock<Option<Pairs>>>);

/// `(institution, event type)` pairs.
type Pairs = HashSet<(u128, String)>;

/// How often [`SubscribedTypes`] is read again from the store.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

impl SubscribedTypes {
    pub fn contains(&self, institution: InstitutionId, event_type: &str) -> bool {
        let loaded = self.0.read().unwrap_or_else(|e| e.into_inner());
        loaded
            .as_ref()
            .is_none_or(|set| set.contains(&(institution.0, event_type.to_string())))
    }

    /// Reads the pairs from `store` (kept as they were when the store cannot answer).
    pub async fn refresh(&self, store: &dyn WebhookStore) {
        match store.subscribed_types().await {
            Ok(pairs) => {
                let set = pairs.into_iter().map(|(i, t)| (i.0, t)).collect();
                *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the webhook subscriptions"),
        }
    }

    /// Refreshes every [`REFRESH_EVERY`] for as long as another clone of it lives.
    pub fn keep_fresh(&self, store: Arc<dyn WebhookStore>) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            while let Some(inner) = weak.upgrade() {
                SubscribedTypes(inner).refresh(store.as_ref()).await;
                tokio::time::sleep(REFRESH_EVERY).await;
            }
        });
    }
}

/// How deliveries are retried and how long a rotated-out secret keeps signing.
#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    /// The delay before each retry (`CAMPUS_WEBHOOK_RETRY_SCHEDULE`); its length is the
    /// number of retries.
    pub retry_schedule: Vec<Duration>,
    /// `CAMPUS_WEBHOOK_ROTATION_OVERLAP`.
    pub rotation_overlap: Duration,
    /// `CAMPUS_WEBHOOK_TIMEOUT`; a delivery's attempt is stopped a little after it.
    pub timeout: Duration,
    /// `CAMPUS_WEBHOOK_DISABLE_AFTER`: a subscription failing every delivery this long is
    /// disabled (and its institution's Academic users told).
    pub disable_after: Duration,
}

impl WebhookPolicy {
    /// The Standard Webhooks schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    pub fn standard_schedule() -> Vec<Duration> {
        [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }

    /// Attempts of a delivery: the first and one per delay of the schedule.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.retry_schedule.len() + 1).unwrap_or(u32::MAX)
    }

    /// The delay after failed attempt `attempt` (1-based), with up to ±10 % jitter.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let base = self
            .retry_schedule
            .get(attempt.saturating_sub(1) as usize)
            .or(self.retry_schedule.last())
            .copied()
            .unwrap_or_default();
        base.mul_f64(0.9 + rand::random::<f64>() * 0.2)
    }
}

/// What the webhook handlers need.
#[derive(Clone)]
pub struct WebhookDeps {
    pub store: Arc<dyn WebhookStore>,
    pub sender: Arc<dyn WebhookSender>,
    /// Seals and unseals the subscriptions' secrets.
    pub vault: Arc<dyn TokenVault>,
    pub tasks: Arc<dyn TaskQueue>,
    pub clock: Arc<dyn Clock>,
    pub policy: WebhookPolicy,
    pub subscribed: SubscribedTypes,
    /// To tell the Academic users of an institution that a subscription was disabled.
    pub users: Arc<dyn UserRepository>,
    pub notifications: Arc<dyn NotificationRepository>,
    pub ids: Arc<dyn IdGenerator>,
}

/// The message a receiver gets (the body of every delivery of one event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookMessage {
    /// The message id (`webhook-id`): the event's id.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event occurred (RFC 3339).
    pub timestamp: String,
    pub institution_id: String,
    pub correlation_id: Option<String>,
    pub data: serde_json::Value,
}

impl WebhookMessage {
    /// A message of `institution`, which happened `at`.
    pub fn new(
        id: String,
        event_type: String,
        at: Timestamp,
        institution: InstitutionId,
        correlation_id: Option<String>,
        data: serde_json::Value,
    ) -> WebhookMessage {
        WebhookMessage {
            id,
            event_type,
            timestamp: chrono::DateTime::from_timestamp_millis(at.0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            institution_id: uuid::Uuid::from_u128(institution.0).to_string(),
            correlation_id,
            data,
        }
    }

    /// The message of an event, as the route's plan builds it (the fan-out task's payload).
    pub fn of_event(event: &EventEnvelope<Payload>) -> Result<WebhookMessage, String> {
        let institution = event
            .institution_id
            .ok_or("the event has no institution; nobody can subscribe to it")?;
        Ok(WebhookMessage::new(
            uuid::Uuid::from_u128(event.id.0).to_string(),
            event.event_type.clone(),
            event.occurred_at,
            institution,
            event.correlation_id.clone(),
            serde_json::from_str(&event.payload).map_err(|e| e.to_string())?,
        ))
    }
}

/// The payload of a `deliver_webhook` task: the subscription and the exact body, serialized
/// once so that every attempt signs and sends the same bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    pub subscription_id: uuid::Uuid,
    pub message_id: String,
    pub event_type: String,
    pub body: String,
}

impl Delivery {
    /// The delivery task of `message` to `subscription`, at most once per `key`.
    pub fn task(
        subscription: WebhookId,
        message: &WebhookMessage,
        correlation_id: Option<String>,
        attempts: u32,
        key: String,
    ) -> Result<NewTask, TaskError> {
        let body = serde_json::to_string(message).map_err(TaskError::permanent)?;
        if body.len() > MAX_BODY {
            return Err(TaskError::permanent(format!(
                "the message is {} bytes, more than the {MAX_BODY} a webhook may carry",
                body.len()
            )));
        }
        let delivery = Delivery {
            subscription_id: uuid::Uuid::from_u128(subscription.0),
            message_id: message.id.clone(),
            event_type: message.event_type.clone(),
            body,
        };
        Ok(NewTask {
            task_type: DeliverWebhook::TASK_TYPE.into(),
            payload: serde_json::to_string(&delivery).map_err(TaskError::permanent)?,
            institution_id: uuid::Uuid::parse_str(&message.institution_id)
                .ok()
                .map(|u| campus_core::ids::InstitutionId(u.as_u128())),
            correlation_id,
            max_attempts: attempts,
            idempotency_key: Some(key),
            run_at: None,
            priority: Default::default(),
        })
    }
}

/// Enqueues one delivery per enabled subscription to the event's type.
pub struct FanOutWebhooks(pub WebhookDeps);

#[async_trait]
impl Handler for FanOutWebhooks {
    const TASK_TYPE: &'static str = "fan_out_webhooks";
    type Input = WebhookMessage;

    async fn handle(&self, message: WebhookMessage, task: &ClaimedTask) -> Result<(), TaskError> {
        let d = &self.0;
        let institution = task
            .institution_id
            .ok_or_else(|| TaskError::permanent("the task has no institution"))?;
        let subscriptions = d.store.matching(institution, &message.event_type).await?;
        let attempts = d.policy.attempts();
        let deliveries = subscriptions
            .into_iter()
            .map(|s| {
                // Once per fan-out lineage and subscription: a retried fan-out adds nothing.
                let key = format!("webhook:{:032x}:{:032x}", task.lineage_id.0, s.0);
                Delivery::task(s, &message, task.correlation_id.clone(), attempts, key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !deliveries.is_empty() {
            d.tasks.enqueue(&deliveries).await?;
        }
        Ok(())
    }
}

/// Signs and sends one delivery, logs the attempt, and decides what comes next: 2xx
/// succeeds; 410 Gone disables the subscription; 429 and 503 retry after `Retry-After`;
/// anything else retries on the schedule.
pub struct DeliverWebhook(pub WebhookDeps);

#[async_trait]
impl Handler for DeliverWebhook {
    const TASK_TYPE: &'static str = "deliver_webhook";
    type Input = Delivery;

    fn options(&self) -> TaskOptions {
        TaskOptions {
            max_attempts: Some(self.0.policy.attempts()),
            // The request's own timeout stops it first; this only bounds the rest.
            timeout: self.0.policy.timeout + Duration::from_secs(10),
            ..TaskOptions::default()
        }
    }

    async fn handle(&self, delivery: Delivery, task: &ClaimedTask) -> Result<(), TaskError> {
        let d = &self.0;
        let id = WebhookId(delivery.subscription_id.as_u128());
        let Some(target) = d.store.target(id).await? else {
            tracing::info!(subscription = %delivery.subscription_id, "webhook subscription deleted; delivery dropped");
            return Ok(());
        };
        if !target.enabled {
            return Err(TaskError::permanent("the subscription is disabled"));
        }
        let now = d.clock.now();
        let mut secrets = vec![d.vault.unseal(&target.secret)?];
        if let Some((previous, until)) = &target.previous_secret {
            if *until > now {
                secrets.push(d.vault.unseal(previous)?);
            }
        }
        let timestamp = now.0.div_euclid(1000);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = signature_header(&secrets, &delivery.message_id, timestamp, &delivery.body)
            .map_err(|e| TaskError::permanent(format!("cannot sign: {e}")))?;
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("webhook-id".to_string(), delivery.message_id.clone()),
            ("webhook-timestamp".to_string(), timestamp.to_string()),
            ("webhook-signature".to_string(), signature),
        ];
        if let Some(c) = task
            .correlation_id
            .as_deref()
            .filter(|c| campus_core::engine::valid_correlation_id(c))
        {
            headers.push(("x-correlation-id".to_string(), c.to_string()));
        }
        let request = WebhookRequest {
            url: target.url.clone(),
            headers,
            body: delivery.body.clone(),
        };
        let started = Instant::now();
        let sent = d.sender.send(&request).await;
        let mut attempt = DeliveryAttempt {
            task_id: task.id,
            subscription_id: id,
            institution_id: target.institution_id,
            message_id: delivery.message_id.clone(),
            event_type: delivery.event_type.clone(),
            attempt: task.attempt,
            status: None,
            duration: started.elapsed(),
            response_excerpt: String::new(),
            error: None,
        };
        let outcome = match sent {
            Ok(response) => {
                attempt.status = Some(response.status);
                attempt.response_excerpt = response.body_excerpt;
                self.outcome(response.status, response.retry_after, task.attempt, id)
                    .await
            }
            Err(e) => {
                attempt.error = Some(e.to_string());
                match e {
                    PortError::Conflict(why) => Err(TaskError::permanent(why)),
                    e => Err(TaskError::retry_in(e, d.policy.retry_delay(task.attempt))),
                }
            }
        };
        let failing_since = d.store.record_attempt(&attempt).await?;
        let outcome = match (outcome, failing_since) {
            (Err(e), Some(since))
                if !e.permanent
                    && now.0 - since.0
                        >= i64::try_from(d.policy.disable_after.as_millis())
                            .unwrap_or(i64::MAX) =>
            {
                let why = format!(
                    "every delivery failed for {} (the last: {})",
                    humantime::format_duration(d.policy.disable_after),
                    e.message
                );
                self.disable(&target, &why, task).await?;
                Err(TaskError::permanent(why))
            }
            (outcome, _) => outcome,
        };
        crate::metrics::webhook_delivery(match &outcome {
            Ok(()) => "succeeded",
            Err(e) if e.permanent => "failed_permanently",
            Err(_) => "failed_will_retry",
        });
        outcome
    }
}

impl DeliverWebhook {
    /// Disables the subscription and tells its institution's Academic users, once per
    /// delivery lineage.
    async fn disable(
        &self,
        target: &campus_ports::DeliveryTarget,
        why: &str,
        task: &ClaimedTask,
    ) -> Result<(), TaskError> {
        let d = &self.0;
        d.store.disable(target.id, why).await?;
        let page = PageRequest {
            limit: 200,
            after: None,
        };
        let academics = d
            .users
            .list_users(target.institution_id, Role::Academic, page)
            .await?;
        for user in academics {
            let mut notification = Notification::webhook_disabled(
                NotificationId(d.ids.new_id()),
                user.id,
                target.institution_id,
                &target.url,
                why,
                d.clock.now(),
            );
            let dedup = format!(
                "webhook-disabled:{:032x}:{:032x}",
                task.lineage_id.0, user.id.0
            );
            d.notifications
                .create_once(&mut notification, &dedup, &super::context(task))
                .await?;
        }
        Ok(())
    }

    async fn outcome(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        attempt: u32,
        id: WebhookId,
    ) -> Result<(), TaskError> {
        let policy = &self.0.policy;
        match status {
            200..=299 => Ok(()),
            410 => {
                self.0
                    .store
                    .disable(id, "the receiver answered 410 Gone")
                    .await?;
                Err(TaskError::permanent(
                    "410 Gone: the subscription is disabled",
                ))
            }
            429 | 503 => {
                let delay = retry_after
                    .map(|d| d.min(MAX_RETRY_AFTER))
                    .unwrap_or_else(|| policy.retry_delay(attempt));
                Err(TaskError::retry_in(
                    format!("the receiver answered {status}"),
                    delay,
                ))
            }
            _ => Err(TaskError::retry_in(
                format!("the receiver answered {status}"),
                policy.retry_delay(attempt),
            )),
        }
    }
}
