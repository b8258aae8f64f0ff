//! Webhook subscriptions and the delivery log over the in-memory rows (the same rules as
//! PostgreSQL's: scoped by institution, one subscription per URL, a cap per institution).

use super::MemoryStore;
use campus_core::engine::TaskStatus;
use campus_core::events::SealedSecret;
use campus_core::ids::{InstitutionId, TaskId, WebhookId};
use campus_core::Timestamp;
use campus_ports::{
    DeliveryAttempt, DeliveryQuery, DeliveryState, DeliverySummary, DeliveryTarget, LoggedAttempt,
    NewSubscription, PortError, SubscriptionChange, WebhookStore, WebhookSubscription,
};
use std::collections::BTreeMap;

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
        let updated = sub.clone();
        if change.enabled {
            s.failing_since.remove(&id.0);
        }
        Ok(updated)
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

    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
    ) -> Result<Option<Timestamp>, PortError> {
        let at = self.now();
        let mut s = self.lock();
        s.webhook_attempts.push(LoggedAttempt {
            attempt: attempt.clone(),
            at,
        });
        let succeeded = attempt.status.is_some_and(|st| (200..300).contains(&st));
        let since = s
            .failing_since
            .entry(attempt.subscription_id.0)
            .or_insert(None);
        *since = if succeeded {
            None
        } else {
            Some(since.unwrap_or(at))
        };
        Ok(*since)
    }

    async fn deliveries(
        &self,
        institution: InstitutionId,
        subscription: WebhookId,
        q: &DeliveryQuery,
    ) -> Result<Vec<DeliverySummary>, PortError> {
        let s = self.lock();
        let mut by_task: BTreeMap<u128, Vec<&LoggedAttempt>> = BTreeMap::new();
        for l in &s.webhook_attempts {
            let a = &l.attempt;
            let wanted = a.institution_id == institution
                && a.subscription_id == subscription
                && q.event_type.as_ref().is_none_or(|t| *t == a.event_type)
                && q.since.is_none_or(|t| l.at >= t)
                && q.until.is_none_or(|t| l.at < t)
                && q.before.is_none_or(|t| a.task_id < t);
            if wanted {
                by_task.entry(a.task_id.0).or_default().push(l);
            }
        }
        let mut out = Vec::new();
        for (task, mut attempts) in by_task.into_iter().rev() {
            attempts.sort_by_key(|l| l.attempt.attempt);
            let last = attempts[attempts.len() - 1];
            let waiting = s.tasks.get(&task).is_some_and(|t| {
                matches!(
                    t.status,
                    TaskStatus::Pending | TaskStatus::Running | TaskStatus::Retrying
                )
            });
            let state = match last.attempt.status {
                Some(200..=299) => DeliveryState::Succeeded,
                _ if waiting => DeliveryState::Retrying,
                _ => DeliveryState::Failed,
            };
            if q.state.is_some_and(|s| s != state) {
                continue;
            }
            out.push(DeliverySummary {
                task_id: TaskId(task),
                message_id: last.attempt.message_id.clone(),
                event_type: last.attempt.event_type.clone(),
                attempts: u32::try_from(attempts.len()).unwrap_or(u32::MAX),
                last_status: last.attempt.status,
                last_error: last.attempt.error.clone(),
                first_at: attempts[0].at,
                last_at: last.at,
                state,
            });
            if out.len() >= q.limit as usize {
                break;
            }
        }
        Ok(out)
    }

    async fn delivery_attempts(
        &self,
        institution: InstitutionId,
        subscription: WebhookId,
        delivery: TaskId,
    ) -> Result<Vec<LoggedAttempt>, PortError> {
        let mut attempts: Vec<LoggedAttempt> = self
            .lock()
            .webhook_attempts
            .iter()
            .filter(|l| {
                l.attempt.institution_id == institution
                    && l.attempt.subscription_id == subscription
                    && l.attempt.task_id == delivery
            })
            .cloned()
            .collect();
        if attempts.is_empty() {
            return Err(PortError::NotFound("webhook delivery"));
        }
        attempts.sort_by_key(|l| l.attempt.attempt);
        Ok(attempts)
    }
}
