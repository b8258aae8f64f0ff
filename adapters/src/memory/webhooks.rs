//! Webhook subscriptions and the delivery log over the in-memory rows (the same rules as
//! PostgreSQL's: scoped by institution, one subscription per URL, a cap per institution).

use super::MemoryStore;
use campus_core::events::SealedSecret;
use campus_core::ids::{InstitutionId, WebhookId};
use campus_core::Timestamp;
use campus_ports::{
    DeliveryAttempt, DeliveryTarget, NewSubscription, PortError, SubscriptionChange, WebhookStore,
    WebhookSubscription,
};

fn not_found() -> PortError {
    PortError::NotFound("webhook subscription")
}

fn duplicate() -> PortError {
    PortError::Conflict("the institution already has a subscription to this URL".into())
}

#[async_trait::async_trait]
impl WebhookStore for MemoryStore {
    async fn create_subscription(
        &self,
        new: &NewSubscription,
        max_per_institution: u32,
    ) -> Result<WebhookSubscription, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let theirs: Vec<&WebhookSubscription> = s
            .webhooks
            .values()
            .map(|(sub, _)| sub)
            .filter(|sub| sub.institution_id == new.institution_id)
            .collect();
        if theirs.len() >= max_per_institution as usize {
            return Err(PortError::Conflict(format!(
                "the institution already has {} subscriptions, the most allowed",
                theirs.len()
            )));
        }
        if theirs.iter().any(|sub| sub.url == new.url) {
            return Err(duplicate());
        }
        let id = WebhookId(s.new_id(now));
        let sub = WebhookSubscription {
            id,
            institution_id: new.institution_id,
            url: new.url.clone(),
            event_types: new.event_types.clone(),
            description: new.description.clone(),
            enabled: new.enabled,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        let target = DeliveryTarget {
            id,
            institution_id: new.institution_id,
            url: new.url.clone(),
            enabled: new.enabled,
            secret: new.secret.clone(),
            previous_secret: None,
        };
        s.webhooks.insert(id.0, (sub.clone(), target));
        Ok(sub)
    }

    async fn subscriptions(
        &self,
        institution: InstitutionId,
    ) -> Result<Vec<WebhookSubscription>, PortError> {
        Ok(self
            .lock()
            .webhooks
            .values()
            .filter(|(sub, _)| sub.institution_id == institution)
            .map(|(sub, _)| sub.clone())
            .collect())
    }

    async fn subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<WebhookSubscription, PortError> {
        self.lock()
            .webhooks
            .get(&id.0)
            .filter(|(sub, _)| sub.institution_id == institution)
            .map(|(sub, _)| sub.clone())
            .ok_or_else(not_found)
    }

    async fn update_subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        change: &SubscriptionChange,
    ) -> Result<WebhookSubscription, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let taken = s.webhooks.values().any(|(sub, _)| {
            sub.institution_id == institution && sub.id != id && sub.url == change.url
        });
        let (sub, target) = s
            .webhooks
            .get_mut(&id.0)
            .filter(|(sub, _)| sub.institution_id == institution)
            .ok_or_else(not_found)?;
        if taken {
            return Err(duplicate());
        }
        sub.url = change.url.clone();
        sub.event_types = change.event_types.clone();
        sub.description = change.description.clone();
        sub.enabled = change.enabled;
        if change.enabled {
            sub.disabled_reason = None;
        }
        sub.updated_at = now;
        target.url = change.url.clone();
        target.enabled = change.enabled;
        Ok(sub.clone())
    }

    async fn delete_subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<(), PortError> {
        let mut s = self.lock();
        match s.webhooks.get(&id.0) {
            Some((sub, _)) if sub.institution_id == institution => {
                s.webhooks.remove(&id.0);
                Ok(())
            }
            _ => Err(not_found()),
        }
    }

    async fn rotate_secret(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        secret: &SealedSecret,
        previous_until: Timestamp,
    ) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        let (sub, target) = s
            .webhooks
            .get_mut(&id.0)
            .filter(|(sub, _)| sub.institution_id == institution)
            .ok_or_else(not_found)?;
        let old = std::mem::replace(&mut target.secret, secret.clone());
        target.previous_secret = Some((old, previous_until));
        sub.updated_at = now;
        Ok(())
    }

    async fn matching(
        &self,
        institution: InstitutionId,
        event_type: &str,
    ) -> Result<Vec<WebhookId>, PortError> {
        Ok(self
            .lock()
            .webhooks
            .values()
            .filter(|(sub, _)| {
                sub.institution_id == institution
                    && sub.enabled
                    && sub.event_types.iter().any(|t| t == event_type)
            })
            .map(|(sub, _)| sub.id)
            .collect())
    }

    async fn subscribed_types(&self) -> Result<Vec<(InstitutionId, String)>, PortError> {
        Ok(self
            .lock()
            .webhooks
            .values()
            .filter(|(sub, _)| sub.enabled)
            .flat_map(|(sub, _)| {
                sub.event_types
                    .iter()
                    .map(|t| (sub.institution_id, t.clone()))
            })
            .collect())
    }

    async fn target(&self, id: WebhookId) -> Result<Option<DeliveryTarget>, PortError> {
        Ok(self.lock().webhooks.get(&id.0).map(|(_, t)| t.clone()))
    }

    async fn disable(&self, id: WebhookId, reason: &str) -> Result<(), PortError> {
        let now = self.now();
        if let Some((sub, target)) = self.lock().webhooks.get_mut(&id.0) {
            sub.enabled = false;
            sub.disabled_reason = Some(reason.to_string());
            sub.updated_at = now;
            target.enabled = false;
        }
        Ok(())
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), PortError> {
        self.lock().webhook_attempts.push(attempt.clone());
        Ok(())
    }
}
