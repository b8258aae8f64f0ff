//! `/academic/webhooks`: an Academic user manages their institution's webhook
//! subscriptions. The signing secret is returned once, at creation (and by a rotation).

use super::at;
use super::auth::BearerAuth;
use super::public::{ApiTags, NoContent};
use crate::services::webhooks::SubscriptionInput;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::ids::{TaskId, WebhookId};
use campus_core::values::Role;
use campus_ports::{DeliveryQuery, DeliveryState, DeliverySummary, WebhookSubscription};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

/// A subscription to create, or the full replacement of one.
#[derive(Object)]
pub struct WebhookRequest {
    /// Where deliveries are POSTed: https, on a public address (unless the server allows
    /// the host in `CAMPUS_WEBHOOK_ALLOWED_HOSTS`).
    #[oai(validator(max_length = 2000))]
    pub url: String,
    /// The event types to deliver (at least one), e.g. `ExamGradeNoteAdded`.
    pub event_types: Vec<String>,
    /// Free text for the institution's own use (at most 500 characters).
    #[oai(default)]
    pub description: String,
    /// Whether deliveries are made (default true).
    #[oai(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A subscription (its secret is never shown again after creation).
#[derive(Object)]
pub struct WebhookItem {
    pub id: uuid::Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// Why Campus disabled it (e.g. the receiver answered 410 Gone), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A new subscription with its signing secret, shown this once.
#[derive(Object)]
pub struct CreatedWebhook {
    #[oai(flatten)]
    pub subscription: WebhookItem,
    /// `whsec_` + base64: the key of the `webhook-signature` HMAC (Standard Webhooks).
    pub secret: String,
}

/// A rotated secret, shown this once; the previous one keeps signing beside it for
/// `CAMPUS_WEBHOOK_ROTATION_OVERLAP`.
#[derive(Object)]
pub struct RotatedSecret {
    pub secret: String,
}

/// The queued test delivery.
#[derive(Object)]
pub struct TestDelivery {
    /// Its `webhook-id`.
    pub message_id: String,
}

/// Where a delivery stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Its last attempt got a 2xx.
    Succeeded,
    /// It failed so far and will be tried again.
    Retrying,
    /// It failed for good (no attempts left, the URL refused, or 410 Gone).
    Failed,
}

impl DeliveryStatus {
    fn of(s: DeliveryState) -> Self {
        match s {
            DeliveryState::Succeeded => DeliveryStatus::Succeeded,
            DeliveryState::Retrying => DeliveryStatus::Retrying,
            DeliveryState::Failed => DeliveryStatus::Failed,
        }
    }

    fn state(self) -> DeliveryState {
        match self {
            DeliveryStatus::Succeeded => DeliveryState::Succeeded,
            DeliveryStatus::Retrying => DeliveryState::Retrying,
            DeliveryStatus::Failed => DeliveryState::Failed,
        }
    }
}

/// One delivery of one message to one subscription (a redelivery is another).
#[derive(Object)]
pub struct DeliveryItem {
    pub delivery_id: uuid::Uuid,
    /// Its `webhook-id` (a redelivery keeps it).
    pub message_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The receiver's status at the last attempt, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt got no answer, if it did not.
    pub last_error: Option<String>,
    pub first_attempt_at: chrono::DateTime<chrono::Utc>,
    pub last_attempt_at: chrono::DateTime<chrono::Utc>,
}

/// A page of deliveries, newest first.
#[derive(Object)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryItem>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<uuid::Uuid>,
}

/// One attempt of a delivery.
#[derive(Object)]
pub struct AttemptItem {
    pub attempt: u32,
    pub at: chrono::DateTime<chrono::Utc>,
    pub status: Option<u16>,
    pub duration_ms: f64,
    /// The first 4 KiB of the receiver's response body.
    pub response_excerpt: String,
    pub error: Option<String>,
}

/// A delivery with every attempt, oldest first.
#[derive(Object)]
pub struct DeliveryDetail {
    #[oai(flatten)]
    pub delivery: DeliveryItem,
    pub attempt_log: Vec<AttemptItem>,
}

/// The new delivery a redelivery made.
#[derive(Object)]
pub struct Redelivery {
    pub delivery_id: uuid::Uuid,
}

#[derive(ApiResponse)]
pub enum RedeliveryQueued {
    /// Queued as a new delivery.
    #[oai(status = 202)]
    Accepted(Json<Redelivery>),
}

fn delivery_item(d: DeliverySummary) -> DeliveryItem {
    DeliveryItem {
        delivery_id: uuid::Uuid::from_u128(d.task_id.0),
        message_id: d.message_id,
        event_type: d.event_type,
        status: DeliveryStatus::of(d.state),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        first_attempt_at: at(d.first_at),
        last_attempt_at: at(d.last_at),
    }
}

#[derive(ApiResponse)]
pub enum WebhookCreated {
    /// Created; the secret is in the body, once.
    #[oai(status = 201)]
    Created(Json<CreatedWebhook>),
}

#[derive(ApiResponse)]
pub enum TestQueued {
    /// The `WebhookTest` delivery is queued.
    #[oai(status = 202)]
    Accepted(Json<TestDelivery>),
}

fn item(s: WebhookSubscription) -> WebhookItem {
    WebhookItem {
        id: uuid::Uuid::from_u128(s.id.0),
        url: s.url,
        event_types: s.event_types,
        description: s.description,
        enabled: s.enabled,
        disabled_reason: s.disabled_reason,
        created_at: at(s.created_at),
        updated_at: at(s.updated_at),
    }
}

fn input(body: Json<WebhookRequest>) -> SubscriptionInput {
    let Json(b) = body;
    SubscriptionInput {
        url: b.url,
        event_types: b.event_types,
        description: b.description,
        enabled: b.enabled,
    }
}

pub struct WebhooksApi;

#[OpenApi(tag = "ApiTags::Academic")]
impl WebhooksApi {
    /// Subscribe to the institution's events; the signing secret is returned this once
    #[oai(
        path = "/academic/webhooks",
        method = "post",
        operation_id = "createWebhook"
    )]
    async fn create(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        body: Json<WebhookRequest>,
    ) -> Result<WebhookCreated, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let (created, secret) = state.webhooks.create(inst, input(body)).await?;
        Ok(WebhookCreated::Created(Json(CreatedWebhook {
            subscription: item(created),
            secret,
        })))
    }

    /// The institution's subscriptions, oldest first
    #[oai(
        path = "/academic/webhooks",
        method = "get",
        operation_id = "listWebhooks"
    )]
    async fn list(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<WebhookItem>>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let all = state.webhooks.list(inst).await?;
        Ok(Json(all.into_iter().map(item).collect()))
    }

    /// One subscription
    #[oai(
        path = "/academic/webhooks/:id",
        method = "get",
        operation_id = "getWebhook"
    )]
    async fn get(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
    ) -> Result<Json<WebhookItem>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let s = state.webhooks.get(inst, WebhookId(id.0.as_u128())).await?;
        Ok(Json(item(s)))
    }

    /// Replace a subscription's URL, event types, description and enabled flag
    #[oai(
        path = "/academic/webhooks/:id",
        method = "put",
        operation_id = "replaceWebhook"
    )]
    async fn replace(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
        body: Json<WebhookRequest>,
    ) -> Result<Json<WebhookItem>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let s = state
            .webhooks
            .replace(inst, WebhookId(id.0.as_u128()), input(body))
            .await?;
        Ok(Json(item(s)))
    }

    /// Delete a subscription (its delivery log stays)
    #[oai(
        path = "/academic/webhooks/:id",
        method = "delete",
        operation_id = "deleteWebhook"
    )]
    async fn delete(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
    ) -> Result<NoContent, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        state
            .webhooks
            .delete(inst, WebhookId(id.0.as_u128()))
            .await?;
        Ok(NoContent::NoContent)
    }

    /// A new signing secret, returned this once; the old one keeps signing beside it for a while
    #[oai(
        path = "/academic/webhooks/:id/rotate-secret",
        method = "post",
        operation_id = "rotateWebhookSecret"
    )]
    async fn rotate_secret(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
    ) -> Result<Json<RotatedSecret>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let secret = state
            .webhooks
            .rotate_secret(inst, WebhookId(id.0.as_u128()))
            .await?;
        Ok(Json(RotatedSecret { secret }))
    }

    /// The subscription's deliveries, newest first, with their status
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/academic/webhooks/:id/deliveries",
        method = "get",
        operation_id = "listWebhookDeliveries"
    )]
    async fn deliveries(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
        /// Only deliveries in this status.
        status: Query<Option<DeliveryStatus>>,
        /// Only deliveries of this event type.
        event_type: Query<Option<String>>,
        /// Only deliveries with an attempt at or after this instant.
        since: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Only deliveries with an attempt before this instant.
        until: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// The `next_before` of the previous page.
        before: Query<Option<uuid::Uuid>>,
        /// Page size, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<DeliveryPage>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let limit = campus_ports::clamp_limit(limit.0);
        let ms = |t: chrono::DateTime<chrono::Utc>| campus_core::Timestamp(t.timestamp_millis());
        let query = DeliveryQuery {
            state: status.0.map(DeliveryStatus::state),
            event_type: event_type.0,
            since: since.0.map(ms),
            until: until.0.map(ms),
            before: before.0.map(|b| TaskId(b.as_u128())),
            limit,
        };
        let found = state
            .webhooks
            .deliveries(inst, WebhookId(id.0.as_u128()), &query)
            .await?;
        let next_before = (found.len() == limit as usize)
            .then(|| found.last().map(|d| uuid::Uuid::from_u128(d.task_id.0)))
            .flatten();
        Ok(Json(DeliveryPage {
            items: found.into_iter().map(delivery_item).collect(),
            next_before,
        }))
    }

    /// One delivery with every attempt (status, duration, the start of the response)
    #[oai(
        path = "/academic/webhooks/:id/deliveries/:delivery_id",
        method = "get",
        operation_id = "getWebhookDelivery"
    )]
    async fn delivery(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
        delivery_id: Path<uuid::Uuid>,
    ) -> Result<Json<DeliveryDetail>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let (summary, attempts) = state
            .webhooks
            .delivery(
                inst,
                WebhookId(id.0.as_u128()),
                TaskId(delivery_id.0.as_u128()),
            )
            .await?;
        Ok(Json(DeliveryDetail {
            delivery: delivery_item(summary),
            attempt_log: attempts
                .into_iter()
                .map(|l| AttemptItem {
                    attempt: l.attempt.attempt,
                    at: at(l.at),
                    status: l.attempt.status,
                    duration_ms: l.attempt.duration.as_secs_f64() * 1000.0,
                    response_excerpt: l.attempt.response_excerpt,
                    error: l.attempt.error,
                })
                .collect(),
        }))
    }

    /// Deliver the same message again, as a new delivery with the same `webhook-id`
    #[oai(
        path = "/academic/webhooks/:id/deliveries/:delivery_id/redeliver",
        method = "post",
        operation_id = "redeliverWebhook"
    )]
    async fn redeliver(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        id: Path<uuid::Uuid>,
        delivery_id: Path<uuid::Uuid>,
    ) -> Result<RedeliveryQueued, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let copy = state
            .webhooks
            .redeliver(
                inst,
                WebhookId(id.0.as_u128()),
                TaskId(delivery_id.0.as_u128()),
                auth.context(req).correlation_id,
            )
            .await?;
        Ok(RedeliveryQueued::Accepted(Json(Redelivery {
            delivery_id: uuid::Uuid::from_u128(copy.0),
        })))
    }

    /// Send a `WebhookTest` ping to the subscription (a delivery like any other)
    #[oai(
        path = "/academic/webhooks/:id/test",
        method = "post",
        operation_id = "testWebhook"
    )]
    async fn test(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        id: Path<uuid::Uuid>,
    ) -> Result<TestQueued, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let message_id = state
            .webhooks
            .send_test(
                inst,
                WebhookId(id.0.as_u128()),
                auth.context(req).correlation_id,
            )
            .await?;
        Ok(TestQueued::Accepted(Json(TestDelivery { message_id })))
    }
}
