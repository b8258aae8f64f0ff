//! `/academic/webhooks`: an Academic user manages their institution's webhook
//! subscriptions. The signing secret is returned once, at creation (and by a rotation).

use super::auth::BearerAuth;
use super::public::{ApiTags, NoContent};
use crate::services::webhooks::SubscriptionInput;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::ids::WebhookId;
use campus_core::values::Role;
use campus_ports::WebhookSubscription;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

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
    let at = |t: campus_core::Timestamp| {
        chrono::DateTime::from_timestamp_millis(t.0).unwrap_or_default()
    };
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
    #[oai(path = "/academic/webhooks", method = "post")]
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
    #[oai(path = "/academic/webhooks", method = "get")]
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
    #[oai(path = "/academic/webhooks/:id", method = "get")]
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
    #[oai(path = "/academic/webhooks/:id", method = "put")]
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
    #[oai(path = "/academic/webhooks/:id", method = "delete")]
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
    #[oai(path = "/academic/webhooks/:id/rotate-secret", method = "post")]
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

    /// Send a `WebhookTest` ping to the subscription (a delivery like any other)
    #[oai(path = "/academic/webhooks/:id/test", method = "post")]
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
