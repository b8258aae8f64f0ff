//! `/academic/webhooks`: an Academic user manages their institution's webhook
//! subscriptions. The signing secret is returned once, at creation (and by a rotation).

use super::at;
use super::auth::BearerAuth;
use super::public::{ApiTags, NoContent};
use super::text::Text;
use crate::handlers::webhooks::TEST_EVENT;
use crate::services::webhooks::SubscriptionInput;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::events::EventType;
use campus_core::ids::{TaskId, WebhookId};
use campus_core::values::Role;
use campus_ports::{DeliveryQuery, DeliveryState, DeliverySummary, WebhookSubscription};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
#[cfg(test)]
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

/// Declares [`SubscribableEventType`] and [`DeliveredEventType`] (the same types and
/// `WebhookTest`) from one list, with the conversions to the domain type and between them.
macro_rules! webhook_event_types {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// An event type one can subscribe to: every domain event type but `AdmCreated` and
        /// `ResetPasswordTokenCreated` (which carry nothing an institution should receive).
        #[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
        #[oai(rename_all = "PascalCase")]
        pub enum SubscribableEventType {
            $($(#[$doc])* $name,)*
        }

        /// The type of a delivered message: a subscribable event type, or `WebhookTest` for the
        /// ping of `POST /academic/webhooks/{id}/test`.
        #[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
        #[oai(rename_all = "PascalCase")]
        pub enum DeliveredEventType {
            $($(#[$doc])* $name,)*
            /// The test ping.
            WebhookTest,
        }

        impl SubscribableEventType {
            /// Every subscribable type, in the order of [`EventType::ALL`].
            pub const ALL: [SubscribableEventType; [$(stringify!($name)),*].len()] =
                [$(SubscribableEventType::$name),*];

            /// The domain event type.
            pub fn event_type(self) -> EventType {
                match self {
                    $(SubscribableEventType::$name => EventType::$name,)*
                }
            }
        }

        impl DeliveredEventType {
            fn of(t: SubscribableEventType) -> Self {
                match t {
                    $(SubscribableEventType::$name => DeliveredEventType::$name,)*
                }
            }
        }
    };
}

webhook_event_types! {
    /// An institution was created (with its first Academic user).
    InstitutionCreated,
    /// An Academic user was created.
    AcademicCreated,
    /// A Teacher was created.
    TeacherCreated,
    /// A Student was created.
    StudentCreated,
    /// A user changed their password.
    PasswordChanged,
    /// A discipline was created.
    DisciplineCreated,
    /// A class was opened.
    ClassCreated,
    /// A student was enrolled in a class.
    StudentEnrolled,
    /// A teacher set an exam grade note.
    ExamGradeNoteAdded,
    /// A user was notified.
    NotificationCreated,
}

impl SubscribableEventType {
    /// Its name (the domain event type's).
    pub fn as_str(self) -> &'static str {
        self.event_type().as_str()
    }

    /// The type stored as `raw`. A subscription only ever stores validated types; an
    /// unknown one is a broken invariant, answered as an error rather than sent unlisted.
    fn parse(raw: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                tracing::error!(event_type = raw, "a stored webhook event type is unknown");
                ApiError::unavailable("a webhook names an event type this release does not know")
            })
    }
}

impl DeliveredEventType {
    /// The type a delivery stored as `raw`: messages are only made for subscribed types and
    /// the test ping (an unknown one is a broken invariant, see
    /// [`SubscribableEventType::parse`]).
    fn parse(raw: &str) -> Result<Self, ApiError> {
        if raw == TEST_EVENT {
            return Ok(DeliveredEventType::WebhookTest);
        }
        SubscribableEventType::parse(raw).map(Self::of)
    }
}

/// A subscription to create, or the full replacement of one.
#[derive(Object)]
#[oai(example)]
pub struct WebhookRequest {
    /// Where deliveries are POSTed: https, on a public address (unless the server allows
    /// the host in `CAMPUS_WEBHOOK_ALLOWED_HOSTS`), without a user name or password; at
    /// most 2000 bytes once trimmed. Unique among the institution's subscriptions.
    #[oai(validator(max_length = 2000))]
    pub url: Text,
    /// The event types to deliver (at least one; repeats are ignored).
    #[oai(validator(min_items = 1))]
    pub event_types: Vec<SubscribableEventType>,
    /// Free text for the institution's own use (at most 500 characters).
    #[oai(default, validator(max_length = 500))]
    pub description: Text,
    /// Whether deliveries are made (default true).
    #[oai(default = "enabled_by_default")]
    pub enabled: bool,
}

impl Example for WebhookRequest {
    fn example() -> Self {
        WebhookRequest {
            url: "https://hooks.example.edu/campus".into(),
            event_types: vec![
                SubscribableEventType::ExamGradeNoteAdded,
                SubscribableEventType::StudentEnrolled,
            ],
            description: "Grades to the student portal".into(),
            enabled: true,
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

/// A subscription (its secret is never shown again after creation).
#[derive(Object)]
pub struct WebhookItem {
    /// Its id.
    pub id: uuid::Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types delivered, sorted, without repeats.
    pub event_types: Vec<SubscribableEventType>,
    /// The institution's own note.
    pub description: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why Campus disabled it (e.g. the receiver answered 410 Gone), if it did.
    pub disabled_reason: Option<String>,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was last changed.
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
    /// `whsec_` + base64: the new key of the `webhook-signature` HMAC.
    pub secret: String,
}

/// The queued test delivery.
#[derive(Object)]
pub struct TestDelivery {
    /// Its `webhook-id` (the delivery is listed among the subscription's deliveries).
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
    /// Its id.
    pub delivery_id: uuid::Uuid,
    /// Its `webhook-id` (a redelivery keeps it).
    pub message_id: String,
    /// The type of the message delivered.
    pub event_type: DeliveredEventType,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// The receiver's status at the last attempt, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt got no answer, if it did not.
    pub last_error: Option<String>,
    /// When it was first tried.
    pub first_attempt_at: chrono::DateTime<chrono::Utc>,
    /// When it was last tried.
    pub last_attempt_at: chrono::DateTime<chrono::Utc>,
}

/// A page of deliveries, newest first.
#[derive(Object)]
pub struct DeliveryPage {
    /// The deliveries of the page.
    pub items: Vec<DeliveryItem>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<uuid::Uuid>,
}

/// One attempt of a delivery.
#[derive(Object)]
pub struct AttemptItem {
    /// Which attempt (the first is 1).
    pub attempt: u32,
    /// When it was made.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// The first 4 KiB of the receiver's response body.
    pub response_excerpt: String,
    /// Why it got no answer (connection refused, timeout, URL refused, …), if it did not.
    pub error: Option<String>,
}

/// A delivery with every attempt, oldest first.
#[derive(Object)]
pub struct DeliveryDetail {
    #[oai(flatten)]
    pub delivery: DeliveryItem,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptItem>,
}

/// The new delivery a redelivery made.
#[derive(Object)]
pub struct Redelivery {
    /// The new delivery's id.
    pub delivery_id: uuid::Uuid,
}

#[derive(ApiResponse)]
pub enum RedeliveryQueued {
    /// Queued as a new delivery.
    #[oai(status = 202)]
    Accepted(Json<Redelivery>),
}

fn delivery_item(d: DeliverySummary) -> Result<DeliveryItem, ApiError> {
    Ok(DeliveryItem {
        delivery_id: uuid::Uuid::from_u128(d.task_id.0),
        message_id: d.message_id,
        event_type: DeliveredEventType::parse(&d.event_type)?,
        status: DeliveryStatus::of(d.state),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        first_attempt_at: at(d.first_at),
        last_attempt_at: at(d.last_at),
    })
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

fn item(s: WebhookSubscription) -> Result<WebhookItem, ApiError> {
    Ok(WebhookItem {
        id: uuid::Uuid::from_u128(s.id.0),
        url: s.url,
        event_types: s
            .event_types
            .iter()
            .map(|t| SubscribableEventType::parse(t))
            .collect::<Result<_, _>>()?,
        description: s.description,
        enabled: s.enabled,
        disabled_reason: s.disabled_reason,
        created_at: at(s.created_at),
        updated_at: at(s.updated_at),
    })
}

fn input(body: Json<WebhookRequest>) -> SubscriptionInput {
    let Json(b) = body;
    SubscriptionInput {
        url: b.url.into(),
        event_types: b
            .event_types
            .into_iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        description: b.description.into(),
        enabled: b.enabled,
    }
}

pub struct WebhooksApi;

#[OpenApi(tag = "ApiTags::Academic")]
impl WebhooksApi {
    /// Subscribe to the institution's events; the signing secret is returned this once
    ///
    /// For Academic users, in their institution. Each event of a subscribed type is then
    /// POSTed to the URL, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`), and retried with backoff (a bounded number of times) until the
    /// receiver answers 2xx. 400 when the URL is not https, not public (unless allowed),
    /// already subscribed by the institution, or the institution already has 20
    /// subscriptions.
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
            subscription: item(created)?,
            secret,
        })))
    }

    /// The institution's subscriptions, oldest first
    ///
    /// For Academic users, in their institution (at most 20 subscriptions: no paging).
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
        Ok(Json(all.into_iter().map(item).collect::<Result<_, _>>()?))
    }

    /// One subscription
    ///
    /// For Academic users, in their institution; 404 for another institution's.
    #[oai(
        path = "/academic/webhooks/:id",
        method = "get",
        operation_id = "getWebhook"
    )]
    async fn get(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The subscription's id.
        id: Path<uuid::Uuid>,
    ) -> Result<Json<WebhookItem>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let s = state.webhooks.get(inst, WebhookId(id.0.as_u128())).await?;
        Ok(Json(item(s)?))
    }

    /// Replace a subscription's URL, event types, description and enabled flag
    ///
    /// For Academic users, in their institution; 404 for another institution's. Enabling a
    /// subscription Campus disabled clears its `disabled_reason`. 400 as for creation.
    #[oai(
        path = "/academic/webhooks/:id",
        method = "put",
        operation_id = "replaceWebhook"
    )]
    async fn replace(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The subscription's id.
        id: Path<uuid::Uuid>,
        body: Json<WebhookRequest>,
    ) -> Result<Json<WebhookItem>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let s = state
            .webhooks
            .replace(inst, WebhookId(id.0.as_u128()), input(body))
            .await?;
        Ok(Json(item(s)?))
    }

    /// Delete a subscription (its delivery log stays)
    ///
    /// For Academic users, in their institution; 404 for another institution's. Deliveries
    /// still being tried stop.
    #[oai(
        path = "/academic/webhooks/:id",
        method = "delete",
        operation_id = "deleteWebhook"
    )]
    async fn delete(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The subscription's id.
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
    ///
    /// For Academic users, in their institution; 404 for another institution's. Until
    /// `CAMPUS_WEBHOOK_ROTATION_OVERLAP` has passed, each delivery carries a signature by
    /// each secret, so the receiver can switch at its pace.
    #[oai(
        path = "/academic/webhooks/:id/rotate-secret",
        method = "post",
        operation_id = "rotateWebhookSecret"
    )]
    async fn rotate_secret(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The subscription's id.
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
    ///
    /// For Academic users, in their institution; 404 for another institution's
    /// subscription. Keyset pages: pass the `next_before` of a page as `before` for the next
    /// one.
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
        /// The subscription's id.
        id: Path<uuid::Uuid>,
        /// Only deliveries in this status.
        status: Query<Option<DeliveryStatus>>,
        /// Only deliveries of this event type (e.g. `ExamGradeNoteAdded`, `WebhookTest`).
        event_type: Query<Option<Text>>,
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
            event_type: event_type.0.map(String::from),
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
            items: found
                .into_iter()
                .map(delivery_item)
                .collect::<Result<_, _>>()?,
            next_before,
        }))
    }

    /// One delivery with every attempt (status, duration, the start of the response)
    ///
    /// For Academic users, in their institution; 404 for another institution's
    /// subscription or a delivery of another subscription.
    #[oai(
        path = "/academic/webhooks/:id/deliveries/:delivery_id",
        method = "get",
        operation_id = "getWebhookDelivery"
    )]
    async fn delivery(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The subscription's id.
        id: Path<uuid::Uuid>,
        /// The delivery's id (`delivery_id` of the deliveries list).
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
            delivery: delivery_item(summary)?,
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
    ///
    /// For Academic users, in their institution; 404 for another institution's
    /// subscription or a delivery of another subscription. 409 while the delivery (or an
    /// earlier redelivery of it) is still being tried.
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
        /// The subscription's id.
        id: Path<uuid::Uuid>,
        /// The delivery's id (`delivery_id` of the deliveries list).
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
    ///
    /// For Academic users, in their institution; 404 for another institution's. The ping is
    /// signed and retried like any delivery (a disabled subscription gets none).
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
        /// The subscription's id.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire;
    use crate::handlers::webhooks::subscribable;
    use poem_openapi::types::ToJSON;

    #[test]
    fn the_event_type_enums_are_the_subscribable_types_and_the_ping() {
        let names: Vec<&str> = subscribable().map(|t| t.as_str()).collect();
        let ours: Vec<String> = SubscribableEventType::ALL.into_iter().map(wire).collect();
        assert_eq!(ours, names);
        for t in SubscribableEventType::ALL {
            assert_eq!(wire(t), t.as_str());
            assert_eq!(SubscribableEventType::parse(t.as_str()).ok(), Some(t));
            let delivered = DeliveredEventType::parse(t.as_str()).ok().unwrap();
            assert_eq!(wire(delivered), t.as_str());
        }
        assert_eq!(
            DeliveredEventType::parse(TEST_EVENT).ok(),
            Some(DeliveredEventType::WebhookTest)
        );
        assert_eq!(wire(DeliveredEventType::WebhookTest), TEST_EVENT);
        assert!(SubscribableEventType::parse("AdmCreated").is_err());
    }

    #[test]
    fn the_request_example_is_a_valid_request() {
        let example = WebhookRequest::example().to_json();
        assert!(WebhookRequest::parse_from_json(example).is_ok());
    }
}
