//! The Webhooks section: an institution's subscriptions with their health, one subscription
//! with its deliveries, one delivery with every attempt, and the form that redelivers it.
//!
//! Scope as everywhere on the screen: an Academic user sees their own institution's
//! subscriptions only (another's are not found); an Adm user chooses the institution of the
//! list in its filter and opens any subscription (its institution is looked up by its id).

use super::details::path_id;
use super::lists::reader;
use super::respond::{bad_input, failure, names, page};
use super::session::{form_operator, operator, scope_of, CsrfForm};
use super::views::{self, DeliveryView, FilterValues, Flash, Health, Section};
use crate::engine::Handler;
use crate::handlers::webhooks::{DeliverWebhook, Delivery};
use crate::services::AppError;
use crate::web::{event_context, State};
use campus_core::ids::{InstitutionId, TaskId, WebhookId};
use campus_core::Timestamp;
use campus_ports::{parse_limit, DeliveryQuery, DeliveryState, OperatorSession};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use serde::Deserialize;

/// Deliveries on one page of a subscription, unless the URL asks for another number.
const DELIVERY_PAGE: u32 = 50;
/// The most deliveries one page shows.
const MAX_DELIVERY_PAGE: u32 = 200;

/// The institution whose subscriptions the list shows: an Academic user's own, or the one
/// an Adm user chose (none yet: `None`). Errors: the message of a malformed choice.
fn chosen_institution(
    op: &OperatorSession,
    f: &FilterValues,
) -> Result<Option<InstitutionId>, String> {
    if let Some(own) = scope_of(op) {
        return Ok(Some(own));
    }
    match f.institution_id.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => uuid::Uuid::parse_str(raw)
            .map(|u| Some(InstitutionId(u.as_u128())))
            .map_err(|_| format!("institution_id: {raw:?} is not an institution id")),
    }
}

/// The institution of subscription `id` as `op` may see it: an Academic user's own (where
/// another institution's subscription is not found), or for an Adm user the subscription's.
async fn institution_of(
    state: &State,
    op: &OperatorSession,
    id: WebhookId,
) -> Result<InstitutionId, AppError> {
    if let Some(own) = scope_of(op) {
        return Ok(own);
    }
    match state.webhooks.deps.store.target(id).await? {
        Some(target) => Ok(target.institution_id),
        None => Err(AppError::NotFound("webhook subscription")),
    }
}

/// The success rate of the subscription's delivery attempts over the last day.
async fn health(
    state: &State,
    institution: InstitutionId,
    id: WebhookId,
) -> Result<Health, AppError> {
    let now = chrono::Utc::now().timestamp_millis();
    let window = DeliveryQuery {
        since: Some(Timestamp(now - views::HEALTH_WINDOW_MS)),
        limit: views::HEALTH_DELIVERIES,
        ..DeliveryQuery::default()
    };
    let deliveries = state.webhooks.deliveries(institution, id, &window).await?;
    Ok(Health::of(&deliveries, views::HEALTH_DELIVERIES))
}

/// The subscriptions of the chosen institution, with their health.
#[handler]
pub(super) async fn webhook_list(
    req: &Request,
    Data(state): Data<&State>,
    Query(f): Query<FilterValues>,
) -> Response {
    let (op, _slot) = match reader(req, state).await {
        Ok(reader) => reader,
        Err(r) => return r,
    };
    let chosen = match chosen_institution(&op, &f) {
        Ok(chosen) => chosen,
        Err(message) => return bad_input(req, &message),
    };
    let loaded = async {
        let mut listed = Vec::new();
        if let Some(institution) = chosen {
            for s in state.webhooks.list(institution).await? {
                let h = health(state, institution, s.id).await?;
                listed.push((s, h));
            }
        }
        Ok::<_, AppError>((listed, names(state, &op).await?))
    };
    match loaded.await {
        Ok((listed, names)) => page(
            state,
            "Webhooks",
            Section::Webhooks,
            &op,
            &names,
            &Flash::None,
            &views::webhook_list(&f, chosen, &listed, &names, &op),
        ),
        Err(e) => failure(req, e),
    }
}

/// Which deliveries the subscription page lists: its `status`, `before` and `limit`.
fn delivery_query(f: &FilterValues) -> Result<DeliveryQuery, String> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let state = match given(&f.status) {
        None => None,
        Some(s) => Some(DeliveryState::parse(&s).ok_or_else(|| {
            format!("status: {s:?} is not a delivery status (succeeded, retrying or failed)")
        })?),
    };
    let before = match given(&f.before) {
        None => None,
        Some(b) => Some(TaskId(
            uuid::Uuid::parse_str(&b)
                .map_err(|_| format!("before: {b:?} is not a delivery id"))?
                .as_u128(),
        )),
    };
    let limit = parse_limit(f.limit.as_deref(), DELIVERY_PAGE, MAX_DELIVERY_PAGE)
        .map_err(|e| e.to_string())?;
    Ok(DeliveryQuery {
        state,
        before,
        limit,
        ..DeliveryQuery::default()
    })
}

/// One subscription: its fields, its health and its deliveries.
#[handler]
pub(super) async fn webhook_detail(
    req: &Request,
    Data(state): Data<&State>,
    Path(raw_id): Path<String>,
    Query(f): Query<FilterValues>,
) -> Response {
    let (op, _slot) = match reader(req, state).await {
        Ok(reader) => reader,
        Err(r) => return r,
    };
    let query = match delivery_query(&f) {
        Ok(q) => q,
        Err(message) => return bad_input(req, &message),
    };
    let loaded = async {
        let id = WebhookId(path_id(&raw_id)?);
        let institution = institution_of(state, &op, id).await?;
        let s = state.webhooks.get(institution, id).await?;
        let deliveries = state.webhooks.deliveries(institution, id, &query).await?;
        let h = health(state, institution, id).await?;
        Ok::<_, AppError>((s, deliveries, h, names(state, &op).await?))
    };
    match loaded.await {
        Ok((s, deliveries, h, names)) => {
            let next = (deliveries.len() == query.limit as usize)
                .then(|| deliveries.last().map(|d| d.task_id.0))
                .flatten();
            page(
                state,
                "Webhook",
                Section::Webhooks,
                &op,
                &names,
                &Flash::None,
                &views::webhook_detail(&s, &h, &deliveries, &f, next, &names),
            )
        }
        Err(e) => failure(req, e),
    }
}

/// What the redelivery that led to a delivery's page said.
#[derive(Deserialize, Default)]
pub(super) struct RedeliveredFlash {
    redelivered_from: Option<String>,
}

impl RedeliveredFlash {
    fn flash(&self) -> Flash {
        match self
            .redelivered_from
            .as_deref()
            .and_then(|d| uuid::Uuid::parse_str(d).ok())
        {
            Some(original) => Flash::Done(format!(
                "Redelivered: this new delivery sends the message of delivery {original} again, \
                 with the same webhook-id."
            )),
            None => Flash::None,
        }
    }
}

/// A delivery that is in no attempt log yet: its task, if it is a delivery to `id`.
async fn untried(
    state: &State,
    institution: InstitutionId,
    id: WebhookId,
    delivery: TaskId,
) -> Result<DeliveryView, AppError> {
    let not_found = AppError::NotFound("webhook delivery");
    let task = match state.operations.task(delivery, Some(institution)).await {
        Ok(detail) => detail.task,
        Err(AppError::NotFound(_)) => return Err(not_found),
        Err(e) => return Err(e),
    };
    let payload = serde_json::from_str::<Delivery>(&task.payload).ok();
    match payload {
        Some(d)
            if task.task_type == DeliverWebhook::TASK_TYPE
                && d.subscription_id.as_u128() == id.0 =>
        {
            Ok(DeliveryView::Untried {
                task: Box::new(task),
                message_id: d.message_id,
                event_type: d.event_type,
            })
        }
        _ => Err(not_found),
    }
}

/// The page of one delivery of a subscription, with `flash` on top and `status`.
async fn delivery_page(
    req: &Request,
    state: &State,
    op: &OperatorSession,
    (raw_id, raw_delivery): (&str, &str),
    flash: Flash,
    status: StatusCode,
) -> Response {
    let loaded = async {
        let id = WebhookId(path_id(raw_id)?);
        let delivery = TaskId(path_id(raw_delivery)?);
        let institution = institution_of(state, op, id).await?;
        let s = state.webhooks.get(institution, id).await?;
        let shown = match state.webhooks.delivery(institution, id, delivery).await {
            Ok((summary, attempts)) => DeliveryView::Tried(summary, attempts),
            // Just queued (e.g. redelivered a moment ago), or given up before any request.
            Err(AppError::NotFound(_)) => untried(state, institution, id, delivery).await?,
            Err(e) => return Err(e),
        };
        let body = views::delivery_detail(&s, delivery.0, &shown, op);
        Ok::<_, AppError>((body, names(state, op).await?))
    };
    match loaded.await {
        Ok((body, names)) => page(
            state,
            "Delivery",
            Section::Webhooks,
            op,
            &names,
            &flash,
            &body,
        )
        .with_status(status)
        .into_response(),
        Err(e) => failure(req, e),
    }
}

/// One delivery with every attempt.
#[handler]
pub(super) async fn delivery_detail(
    req: &Request,
    Data(state): Data<&State>,
    Path((id, delivery)): Path<(String, String)>,
    Query(flash): Query<RedeliveredFlash>,
) -> Response {
    match operator(req, state).await {
        Ok(op) => {
            let ids = (id.as_str(), delivery.as_str());
            delivery_page(req, state, &op, ids, flash.flash(), StatusCode::OK).await
        }
        Err(r) => r,
    }
}

/// Delivers the delivery's message again as a new delivery (the same `webhook-id`); on
/// success goes to the new delivery's page.
#[handler]
pub(super) async fn redeliver(
    req: &Request,
    Data(state): Data<&State>,
    Path((id, delivery)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let op = match form_operator(req, state, &form.csrf).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    // The new delivery keeps the original's correlation id; this request's id is recorded
    // beside it, as the screen's other reprocess actions do.
    let request_id = event_context(req).correlation_id;
    let copied = async {
        let subscription = WebhookId(path_id(&id)?);
        let original = TaskId(path_id(&delivery)?);
        let institution = institution_of(state, &op, subscription).await?;
        let copy = state
            .webhooks
            .redeliver(institution, subscription, original, request_id)
            .await?;
        Ok::<_, AppError>((subscription, original, copy))
    };
    match copied.await {
        Ok((subscription, original, copy)) => {
            let to = format!(
                "/admin/webhooks/{}/deliveries/{}",
                views::uuid(subscription.0),
                views::uuid(copy.0)
            );
            let to = views::link(&to, &[("redelivered_from", views::uuid(original.0))]);
            Redirect::see_other(to).into_response()
        }
        // Refused (e.g. it, or an earlier redelivery of it, is still being tried): the
        // delivery's page says why.
        Err(e @ (AppError::Conflict(_) | AppError::Invalid(_))) => {
            let status = if matches!(e, AppError::Conflict(_)) {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            let flash = Flash::Error(e.to_string());
            delivery_page(req, state, &op, (&id, &delivery), flash, status).await
        }
        Err(e) => failure(req, e),
    }
}
