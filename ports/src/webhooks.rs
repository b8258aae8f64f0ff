//! Webhooks: an institution's subscriptions to its domain events, the HTTP request of each
//! delivery (signed per the Standard Webhooks specification by the caller), and the log of
//! every attempt. Deliveries themselves are tasks of the engine.

use crate::PortError;
use campus_core::events::SealedSecret;
use campus_core::ids::{InstitutionId, TaskId, WebhookId};
use campus_core::Timestamp;
use std::time::Duration;

/// A subscription as its institution's Academic users see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    pub id: WebhookId,
    pub institution_id: InstitutionId,
    pub url: String,
    /// Event type names, sorted, without duplicates.
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// Why Campus disabled it (410 Gone, failing for too long), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a new subscription is made of; its secret arrives sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub institution_id: InstitutionId,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub secret: SealedSecret,
}

/// The editable part of a subscription (a full replacement, as `PUT` sends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
}

/// What a delivery needs of its subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTarget {
    pub id: WebhookId,
    pub institution_id: InstitutionId,
    pub url: String,
    pub enabled: bool,
    pub secret: SealedSecret,
    /// The secret before the last rotation, which keeps signing until the instant given.
    pub previous_secret: Option<(SealedSecret, Timestamp)>,
}

/// One attempt of one delivery, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The delivery task's attempt (a redelivery is a new task, a copy of the original).
    pub task_id: TaskId,
    pub subscription_id: WebhookId,
    pub institution_id: InstitutionId,
    /// The message id (`webhook-id`) and event type delivered.
    pub message_id: String,
    pub event_type: String,
    pub attempt: u32,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub duration: Duration,
    /// The first [`RESPONSE_EXCERPT`] bytes of the response body (lossy UTF-8).
    pub response_excerpt: String,
    /// Why there was no usable answer (refused address, timeout, connection error).
    pub error: Option<String>,
}

/// An attempt as the log returns it, with when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAttempt {
    pub attempt: DeliveryAttempt,
    pub at: Timestamp,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Its last attempt got a 2xx.
    Succeeded,
    /// It failed so far and will be tried again.
    Retrying,
    /// It failed for good (no attempts left, refused, or 410 Gone).
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Succeeded,
            DeliveryState::Retrying,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// One delivery (one `deliver_webhook` task; a redelivery is another) as its attempts tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySummary {
    pub task_id: TaskId,
    pub message_id: String,
    pub event_type: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub state: DeliveryState,
}

/// Which deliveries of one subscription to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub state: Option<DeliveryState>,
    pub event_type: Option<String>,
    /// Deliveries with an attempt in `[since, until)`.
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Keyset page: deliveries older than this one.
    pub before: Option<TaskId>,
    pub limit: u32,
}

/// How much of a receiver's response body is read and kept.
pub const RESPONSE_EXCERPT: usize = 4096;

/// An institution's subscriptions and the delivery log.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a subscription. Errors: `Conflict` when the institution already has one to
    /// this URL, or already has `max_per_institution`.
    async fn create_subscription(
        &self,
        new: &NewSubscription,
        max_per_institution: u32,
    ) -> Result<WebhookSubscription, PortError>;
    /// The institution's subscriptions, oldest first.
    async fn subscriptions(
        &self,
        institution: InstitutionId,
    ) -> Result<Vec<WebhookSubscription>, PortError>;
    /// Errors: `NotFound` (also for another institution's).
    async fn subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<WebhookSubscription, PortError>;
    /// Replaces the editable fields; enabling clears `disabled_reason` and the failing
    /// streak. Errors: `NotFound`,
    /// `Conflict` (another subscription of the institution has the URL).
    async fn update_subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        change: &SubscriptionChange,
    ) -> Result<WebhookSubscription, PortError>;
    /// Errors: `NotFound`.
    async fn delete_subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<(), PortError>;
    /// Makes `secret` the signing secret; the current one keeps signing until
    /// `previous_until`. Errors: `NotFound`.
    async fn rotate_secret(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        secret: &SealedSecret,
        previous_until: Timestamp,
    ) -> Result<(), PortError>;
    /// The enabled subscriptions of `institution` to `event_type`.
    async fn matching(
        &self,
        institution: InstitutionId,
        event_type: &str,
    ) -> Result<Vec<WebhookId>, PortError>;
    /// Every `(institution, event type)` some enabled subscription asks for (what the
    /// dispatcher's plan consults, refreshed every second).
    async fn subscribed_types(&self) -> Result<Vec<(InstitutionId, String)>, PortError>;
    /// A subscription as a delivery needs it; `None` once deleted.
    async fn target(&self, id: WebhookId) -> Result<Option<DeliveryTarget>, PortError>;
    /// Disables a subscription, saying why (Campus's own decision, e.g. 410 Gone).
    async fn disable(&self, id: WebhookId, reason: &str) -> Result<(), PortError>;
    /// Appends one attempt to the delivery log and returns since when the subscription has
    /// been failing (its first failed attempt after its last success, `None` after a
    /// success).
    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
    ) -> Result<Option<Timestamp>, PortError>;
    /// The deliveries of a subscription of `institution` (newest first).
    async fn deliveries(
        &self,
        institution: InstitutionId,
        subscription: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliverySummary>, PortError>;
    /// Every attempt of one delivery, oldest first. Errors: `NotFound` (none, or another
    /// institution's or subscription's).
    async fn delivery_attempts(
        &self,
        institution: InstitutionId,
        subscription: WebhookId,
        delivery: TaskId,
    ) -> Result<Vec<LoggedAttempt>, PortError>;
}

/// One delivery's HTTP request: `POST url` with these headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    /// `Retry-After` (seconds or an HTTP date), when the receiver sent one.
    pub retry_after: Option<Duration>,
    /// The first [`RESPONSE_EXCERPT`] bytes of the body; the rest is never read.
    pub body_excerpt: String,
}

/// Sends deliveries over HTTP, refusing addresses the safety rule forbids.
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    /// Checks that the URL is allowed (https, a public address or an allowed host) and
    /// sends the request without following redirects. Errors: `Conflict` when the URL is
    /// refused (retrying cannot help), `Unavailable` on a timeout or connection failure.
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, PortError>;
    /// The same check alone, at subscription time. Errors: `Conflict` saying why.
    async fn check_url(&self, url: &str) -> Result<(), PortError>;
}
