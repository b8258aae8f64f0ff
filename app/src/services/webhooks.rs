//! An institution's webhook subscriptions: validation (URL and its address, event types,
//! sizes), the signing secret (generated here, shown once, stored sealed), rotation and the
//! test ping. Deliveries themselves are the handlers' (`crate::handlers::webhooks`).

use super::AppError;
use crate::handlers::webhooks::{
    subscribable, Delivery, WebhookDeps, WebhookMessage, MAX_SUBSCRIPTIONS, TEST_EVENT,
};
use campus_adapters::webhooks::signature::generate_secret;
use campus_core::ids::{InstitutionId, TaskId, WebhookId};
use campus_core::DomainError;
use campus_ports::{
    DeliveryQuery, DeliverySummary, LoggedAttempt, NewSubscription, PortError, SubscriptionChange,
    WebhookSubscription,
};

/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 500;
/// Longest URL accepted.
pub const MAX_URL: usize = 2000;

/// What a client sends to create or replace a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionInput {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(DomainError::Invalid {
        field,
        message: message.into(),
    })
}

/// A duplicate URL or a full institution is bad input of this request (400), not a clash
/// with a concurrent change.
fn conflict_as_invalid(e: PortError) -> AppError {
    match e {
        PortError::Conflict(why) => invalid("url", why),
        e => e.into(),
    }
}

#[derive(Clone)]
pub struct WebhookService {
    pub deps: WebhookDeps,
}

impl WebhookService {
    /// Checks the input: a URL the sender may reach (checked now; again at every delivery),
    /// known event types (sorted, without duplicates), a short description.
    async fn validate(&self, input: SubscriptionInput) -> Result<SubscriptionChange, AppError> {
        let url = input.url.trim().to_string();
        if url.is_empty() || url.len() > MAX_URL {
            return Err(invalid(
                "url",
                format!("give a URL of 1 to {MAX_URL} characters"),
            ));
        }
        self.deps
            .sender
            .check_url(&url)
            .await
            .map_err(|e| match e {
                PortError::Conflict(why) => invalid("url", why),
                e => e.into(),
            })?;
        if input.event_types.is_empty() {
            return Err(invalid(
                "event_types",
                "name at least one event type to subscribe to",
            ));
        }
        let mut types = Vec::new();
        for t in input.event_types {
            if !subscribable().any(|s| s.as_str() == t) {
                let known: Vec<&str> = subscribable().map(|s| s.as_str()).collect();
                return Err(invalid(
                    "event_types",
                    format!("{t:?} is not an event type one can subscribe to (one of {known:?})"),
                ));
            }
            types.push(t);
        }
        types.sort();
        types.dedup();
        if input.description.chars().count() > MAX_DESCRIPTION {
            return Err(invalid(
                "description",
                format!("at most {MAX_DESCRIPTION} characters"),
            ));
        }
        Ok(SubscriptionChange {
            url,
            event_types: types,
            description: input.description,
            enabled: input.enabled,
        })
    }

    /// Creates a subscription; returns it with its signing secret (`whsec_…`), which is
    /// never shown again.
    pub async fn create(
        &self,
        institution: InstitutionId,
        input: SubscriptionInput,
    ) -> Result<(WebhookSubscription, String), AppError> {
        let change = self.validate(input).await?;
        let secret = generate_secret();
        let new = NewSubscription {
            institution_id: institution,
            url: change.url,
            event_types: change.event_types,
            description: change.description,
            enabled: change.enabled,
            secret: self.deps.vault.seal(&secret),
        };
        let created = self
            .deps
            .store
            .create_subscription(&new, MAX_SUBSCRIPTIONS)
            .await
            .map_err(conflict_as_invalid)?;
        self.deps.subscribed.refresh(self.deps.store.as_ref()).await;
        Ok((created, secret))
    }

    pub async fn list(
        &self,
        institution: InstitutionId,
    ) -> Result<Vec<WebhookSubscription>, AppError> {
        Ok(self.deps.store.subscriptions(institution).await?)
    }

    pub async fn get(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<WebhookSubscription, AppError> {
        Ok(self.deps.store.subscription(institution, id).await?)
    }

    pub async fn replace(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        input: SubscriptionInput,
    ) -> Result<WebhookSubscription, AppError> {
        // Not found before invalid: another institution's id says nothing more.
        self.deps.store.subscription(institution, id).await?;
        let change = self.validate(input).await?;
        let updated = self
            .deps
            .store
            .update_subscription(institution, id, &change)
            .await
            .map_err(conflict_as_invalid)?;
        self.deps.subscribed.refresh(self.deps.store.as_ref()).await;
        Ok(updated)
    }

    pub async fn delete(&self, institution: InstitutionId, id: WebhookId) -> Result<(), AppError> {
        self.deps.store.delete_subscription(institution, id).await?;
        self.deps.subscribed.refresh(self.deps.store.as_ref()).await;
        Ok(())
    }

    /// A new signing secret (returned, shown once); the current one keeps signing beside it
    /// for the rotation overlap.
    pub async fn rotate_secret(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<String, AppError> {
        let secret = generate_secret();
        let until = self
            .deps
            .clock
            .now()
            .plus(self.deps.policy.rotation_overlap);
        self.deps
            .store
            .rotate_secret(institution, id, &self.deps.vault.seal(&secret), until)
            .await?;
        Ok(secret)
    }

    /// A subscription's deliveries, newest first.
    pub async fn deliveries(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliverySummary>, AppError> {
        self.deps.store.subscription(institution, id).await?;
        Ok(self.deps.store.deliveries(institution, id, query).await?)
    }

    /// One delivery and every attempt of it, oldest first.
    pub async fn delivery(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        delivery: TaskId,
    ) -> Result<(DeliverySummary, Vec<LoggedAttempt>), AppError> {
        let attempts = self
            .deps
            .store
            .delivery_attempts(institution, id, delivery)
            .await?;
        // The newest delivery not newer than this one is this one.
        let just_this = DeliveryQuery {
            before: Some(TaskId(delivery.0.saturating_add(1))),
            limit: 1,
            ..DeliveryQuery::default()
        };
        let summary = self
            .deps
            .store
            .deliveries(institution, id, &just_this)
            .await?
            .into_iter()
            .find(|d| d.task_id == delivery)
            .ok_or(AppError::NotFound("webhook delivery"))?;
        Ok((summary, attempts))
    }

    /// Delivers the same message again as a new delivery (a copy of the original task, so
    /// the same `webhook-id`); returns the new delivery's id. Errors: `NotFound`; `Conflict`
    /// while the delivery (or an earlier redelivery of it) is still being tried.
    pub async fn redeliver(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        delivery: TaskId,
        request_id: Option<String>,
    ) -> Result<TaskId, AppError> {
        self.deps
            .store
            .delivery_attempts(institution, id, delivery)
            .await?;
        Ok(self
            .deps
            .tasks
            .reprocess_task(delivery, Some(institution), request_id)
            .await?)
    }

    /// Queues a `WebhookTest` delivery to the subscription (through the engine, like any
    /// delivery); returns its message id.
    pub async fn send_test(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        correlation_id: Option<String>,
    ) -> Result<String, AppError> {
        let subscription = self.deps.store.subscription(institution, id).await?;
        let message_id = uuid::Uuid::now_v7().to_string();
        let message = WebhookMessage::new(
            message_id.clone(),
            TEST_EVENT.into(),
            self.deps.clock.now(),
            institution,
            correlation_id.clone(),
            serde_json::json!({
                "subscription_id": uuid::Uuid::from_u128(subscription.id.0).to_string(),
            }),
        );
        let task = Delivery::task(
            subscription.id,
            &message,
            correlation_id,
            self.deps.policy.attempts(),
            format!("webhook-test:{message_id}"),
        )
        .map_err(|e| AppError::Conflict(e.message))?;
        self.deps.tasks.enqueue(&[task]).await?;
        Ok(message_id)
    }
}
