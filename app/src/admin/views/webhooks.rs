//! The Webhooks section: an institution's subscriptions with the health of their deliveries
//! (an Adm user chooses the institution first), one subscription with its deliveries, and one
//! delivery with every attempt and the button that delivers the same message again.

use super::filters::{pager, FilterValues};
use super::parts::{badge, facts, institution_name, link, none_yet, short_id, time, uuid, Names};
use super::tables::errors_table;
use campus_core::ids::InstitutionId;
use campus_ports::{
    DeliveryState, DeliverySummary, LoggedAttempt, OperatorSession, TaskView, WebhookSubscription,
};
use maud::{html, Markup};

/// The window the health of a subscription is computed over: the last day.
pub const HEALTH_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// How many deliveries of the window the health reads, newest first.
pub const HEALTH_DELIVERIES: u32 = 200;

/// The success rate of a subscription's delivery attempts over the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Attempts made in the window (retries and redeliveries included).
    pub attempts: u64,
    /// Those the receiver answered with a 2xx.
    pub succeeded: u64,
    /// More deliveries had attempts in the window than were read: the rate is the newest
    /// [`HEALTH_DELIVERIES`] deliveries'.
    pub partial: bool,
}

impl Health {
    /// The health from the deliveries with an attempt in the window, each summarising only its
    /// attempts in the window (as `DeliveryQuery::since` does), at most `read` of them. A
    /// delivery stops at its first 2xx, so its only successful attempt is its last one.
    pub fn of(window: &[DeliverySummary], read: u32) -> Health {
        Health {
            attempts: window.iter().map(|d| u64::from(d.attempts)).sum(),
            succeeded: window
                .iter()
                .filter(|d| d.last_status.is_some_and(|s| (200..300).contains(&s)))
                .count() as u64,
            partial: window.len() >= read as usize,
        }
    }

    /// Succeeded attempts over all attempts; `None` without attempts.
    pub fn rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.succeeded as f64 / self.attempts as f64)
    }
}

/// What the health number means, said once on each page that shows it.
fn health_note() -> Markup {
    html! {
        p.muted #health-note {
            "Health is the share of delivery attempts of the last 24 hours that the receiver \
             answered with a 2xx status (retries and redeliveries count as attempts); \
             \"no deliveries\" when none was attempted in that time."
        }
    }
}

/// The health as a percentage with its counts, or "no deliveries".
fn health(h: &Health) -> Markup {
    html! {
        @match h.rate() {
            None => span.health.muted { "no deliveries" },
            Some(rate) => {
                span.health { (format!("{:.1}%", rate * 100.0)) }
                " "
                span.muted {
                    "(" (h.succeeded) " of " (h.attempts) " attempts"
                    @if h.partial { ", newest " (HEALTH_DELIVERIES) " deliveries" }
                    ")"
                }
            }
        }
    }
}

/// Enabled, or disabled with the reason Campus gave (if it disabled it).
fn state(s: &WebhookSubscription) -> Markup {
    html! {
        @if s.enabled {
            (badge("enabled"))
        } @else {
            (badge("disabled"))
            @if let Some(why) = &s.disabled_reason {
                " " span.reason { (why) }
            }
        }
    }
}

fn event_types(types: &[String]) -> Markup {
    html! {
        @for (i, t) in types.iter().enumerate() {
            @if i > 0 { ", " }
            code { (t) }
        }
    }
}

/// The page of a subscription.
fn subscription_href(s: &WebhookSubscription) -> String {
    format!("/admin/webhooks/{}", uuid(s.id.0))
}

/// The page of one delivery of a subscription.
fn delivery_href(s: &WebhookSubscription, delivery: u128) -> String {
    format!("{}/deliveries/{}", subscription_href(s), uuid(delivery))
}

/// An Adm user's choice of the institution whose subscriptions are listed.
fn institution_form(f: &FilterValues, names: &Names) -> Markup {
    let current = f.institution_id.as_deref().unwrap_or_default().trim();
    let mut options: Vec<(String, &String)> =
        names.iter().map(|(id, name)| (uuid(id.0), name)).collect();
    options.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)));
    html! {
        form.filters method="get" action="/admin/webhooks" {
            label {
                "Institution"
                select name="institution_id" {
                    option value="" selected[current.is_empty()] { "choose one" }
                    @for (v, text) in &options {
                        option value=(v) selected[v == current] { (text) }
                    }
                }
            }
            button.primary type="submit" { "Show" }
        }
    }
}

fn subscription_table(
    institution: &str,
    subscriptions: &[(WebhookSubscription, Health)],
) -> Markup {
    html! {
        table.list #webhooks {
            caption.visually-hidden { "Webhook subscriptions of " (institution) }
            thead { tr {
                th scope="col" { "URL" } th scope="col" { "event types" }
                th scope="col" { "state" } th scope="col" { "health, last 24 h" }
            } }
            tbody {
                @for (s, h) in subscriptions {
                    tr data-id=(uuid(s.id.0)) data-enabled=(s.enabled) {
                        td { a href=(subscription_href(s)) { (s.url) } }
                        td { (event_types(&s.event_types)) }
                        td { (state(s)) }
                        td { (health(h)) }
                    }
                }
            }
        }
    }
}

/// The Webhooks page body: the subscriptions of `chosen` (none chosen yet: an Adm user is
/// asked to choose an institution) with their health.
pub fn webhook_list(
    f: &FilterValues,
    chosen: Option<InstitutionId>,
    subscriptions: &[(WebhookSubscription, Health)],
    names: &Names,
    who: &OperatorSession,
) -> Markup {
    html! {
        h1 { "Webhooks" }
        @if who.institution_id.is_none() {
            (institution_form(f, names))
        }
        (health_note())
        div #live {
            @match chosen {
                None => div.empty { "Choose an institution to see its webhook subscriptions." },
                Some(i) if subscriptions.is_empty() => div.empty {
                    (institution_name(names, i)) " has no webhook subscription."
                },
                Some(i) => (subscription_table(&institution_name(names, i), subscriptions)),
            }
        }
    }
}

fn subscription_facts(s: &WebhookSubscription, h: &Health, names: &Names) -> Markup {
    let description = if s.description.is_empty() {
        html! { span.muted { "—" } }
    } else {
        html! { (s.description) }
    };
    facts(&[
        ("URL", html! { code { (s.url) } }),
        (
            "Institution",
            html! { (institution_name(names, s.institution_id)) },
        ),
        ("Event types", event_types(&s.event_types)),
        ("State", state(s)),
        ("Health, last 24 h", health(h)),
        ("Description", description),
        ("Created", html! { (time(s.created_at)) }),
        ("Updated", html! { (time(s.updated_at)) }),
    ])
}

/// The HTTP status of an attempt, or a dash when the receiver did not answer.
fn http_status(status: Option<u16>) -> String {
    status.map_or_else(|| "—".into(), |s| s.to_string())
}

/// An attempt's error, or a dash.
fn error_text(error: &Option<String>) -> Markup {
    html! {
        @match error {
            Some(e) => span.reason { (e) },
            None => span.muted { "—" },
        }
    }
}

fn delivery_table(s: &WebhookSubscription, deliveries: &[DeliverySummary]) -> Markup {
    html! {
        table.list #deliveries {
            caption.visually-hidden { "Deliveries to " (s.url) ", newest first" }
            thead { tr {
                th scope="col" { "status" } th scope="col" { "event type" }
                th.num scope="col" { "attempts" } th.num scope="col" { "last HTTP status" }
                th scope="col" { "last error" } th scope="col" { "first attempt (UTC)" }
                th scope="col" { "last attempt (UTC)" } th scope="col" { "delivery" }
            } }
            tbody {
                @for d in deliveries {
                    @let href = delivery_href(s, d.task_id.0);
                    tr data-id=(uuid(d.task_id.0)) data-status=(d.state.as_str()) {
                        td { (badge(d.state.as_str())) }
                        td { a href=(href) { (d.event_type) } }
                        td.num { (d.attempts) }
                        td.num { (http_status(d.last_status)) }
                        @match &d.last_error {
                            Some(e) => td.error title=(e) { (e) },
                            None => td {},
                        }
                        td { (time(d.first_at)) }
                        td { (time(d.last_at)) }
                        td { a href=(href) { (short_id(d.task_id.0)) } }
                    }
                }
            }
        }
    }
}

/// The status filter of a subscription's deliveries.
fn delivery_filters(s: &WebhookSubscription, f: &FilterValues) -> Markup {
    let action = subscription_href(s);
    let current = f.status.as_deref().unwrap_or_default();
    let states = [
        DeliveryState::Succeeded,
        DeliveryState::Retrying,
        DeliveryState::Failed,
    ];
    html! {
        form.filters method="get" action=(action) {
            label {
                "Status"
                select name="status" {
                    option value="" selected[current.is_empty()] { "any" }
                    @for st in states {
                        option value=(st.as_str()) selected[st.as_str() == current] { (st.as_str()) }
                    }
                }
            }
            button.primary type="submit" { "Filter" }
            a href=(action) { "Clear" }
        }
    }
}

/// The page of one subscription: its fields, its health and its deliveries (newest first,
/// filtered by status, with the pager of older ones).
pub fn webhook_detail(
    s: &WebhookSubscription,
    h: &Health,
    deliveries: &[DeliverySummary],
    f: &FilterValues,
    next_before: Option<u128>,
    names: &Names,
) -> Markup {
    let list = link(
        "/admin/webhooks",
        &[("institution_id", uuid(s.institution_id.0))],
    );
    html! {
        h1 { "Webhook " code { (uuid(s.id.0)) } }
        p { a.inline href=(list) { "All webhooks of " (institution_name(names, s.institution_id)) } }
        (subscription_facts(s, h, names))
        (health_note())
        h2 { "Deliveries" }
        (delivery_filters(s, f))
        div #live {
            @if deliveries.is_empty() {
                div.empty { "No delivery matches these filters." }
            } @else {
                (delivery_table(s, deliveries))
            }
            (pager(&subscription_href(s), f, next_before))
        }
    }
}

/// A delivery as the page shows it.
pub enum DeliveryView {
    /// Tried at least once: its summary and every attempt, oldest first.
    Tried(DeliverySummary, Vec<LoggedAttempt>),
    /// Not in the attempt log (yet): just queued, or given up before any request was sent.
    Untried {
        task: Box<TaskView>,
        message_id: String,
        event_type: String,
    },
}

/// The response excerpt of an attempt, as the receiver sent it; focusable, since a long one
/// scrolls.
fn excerpt(text: &str) -> Markup {
    html! {
        @if text.is_empty() {
            span.muted { "—" }
        } @else {
            pre.json.excerpt tabindex="0" { (text) }
        }
    }
}

fn attempt_table(attempts: &[LoggedAttempt]) -> Markup {
    html! {
        table.list #attempts {
            caption.visually-hidden { "Every attempt of this delivery, oldest first" }
            thead { tr {
                th.num scope="col" { "attempt" } th scope="col" { "at (UTC)" }
                th.num scope="col" { "HTTP status" } th.num scope="col" { "duration" }
                th scope="col" { "error" } th scope="col" { "response (first 4 KiB)" }
            } }
            tbody {
                @for l in attempts {
                    @let a = &l.attempt;
                    tr data-attempt=(a.attempt) data-status=(http_status(a.status)) {
                        td.num { (a.attempt) }
                        td { (time(l.at)) }
                        td.num { (http_status(a.status)) }
                        td.num { (format!("{:.1} ms", a.duration.as_secs_f64() * 1000.0)) }
                        td { (error_text(&a.error)) }
                        td { (excerpt(&a.response_excerpt)) }
                    }
                }
            }
        }
    }
}

/// The button that delivers the same message again, as a new delivery. A plain form: its
/// answer is the new delivery's page.
fn redeliver_form(action: &str, csrf: &str) -> Markup {
    html! {
        form #redeliver .actions method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            button.primary type="submit" { "Redeliver" }
            span.muted { "sends the same message again (same webhook-id) as a new delivery; this one stays as it is" }
        }
    }
}

/// The facts every delivery page shows.
fn delivery_facts(
    s: &WebhookSubscription,
    delivery: u128,
    message_id: &str,
    event_type: &str,
    more: Vec<(&'static str, Markup)>,
) -> Markup {
    let task = format!("/admin/tasks/{}", uuid(delivery));
    let mut items = vec![
        (
            "Subscription",
            html! { a.inline href=(subscription_href(s)) { (s.url) } },
        ),
        ("Event type", html! { (event_type) }),
        (
            "Message (webhook-id)",
            html! { code #message-id { (message_id) } },
        ),
        (
            "Task",
            html! { a #delivery-task .inline href=(task) { "the deliver_webhook task of this delivery" } },
        ),
    ];
    items.extend(more);
    facts(&items)
}

/// The page of one delivery: where it stands, every attempt, the link to its task and the
/// Redeliver button (once it is no longer being tried).
pub fn delivery_detail(
    s: &WebhookSubscription,
    delivery: u128,
    shown: &DeliveryView,
    who: &OperatorSession,
) -> Markup {
    let action = format!("{}/redeliver", delivery_href(s, delivery));
    html! {
        h1 { "Delivery " code { (uuid(delivery)) } }
        div #live {
            @match shown {
                DeliveryView::Tried(d, attempts) => {
                    p { (badge(d.state.as_str())) " " strong { (d.event_type) } }
                    @if d.state == DeliveryState::Retrying {
                        (none_yet("It can be redelivered once it has succeeded or failed for good."))
                    } @else {
                        (redeliver_form(&action, &who.csrf_token))
                    }
                    (delivery_facts(s, delivery, &d.message_id, &d.event_type, vec![
                        ("Status", badge(d.state.as_str())),
                        ("Attempts", html! { (d.attempts) }),
                        ("Last HTTP status", html! { (http_status(d.last_status)) }),
                        ("First attempt", html! { (time(d.first_at)) }),
                        ("Last attempt", html! { (time(d.last_at)) }),
                    ]))
                    h2 { "Attempts" }
                    (attempt_table(attempts))
                },
                DeliveryView::Untried { task, message_id, event_type } => {
                    p { (badge(task.status.as_str())) " " strong { (event_type) } }
                    @if task.status.is_final() {
                        p.muted #untried { "No request was sent: it was given up before its first attempt." }
                    } @else {
                        p.muted #untried { "Not tried yet: its attempts appear here as they are made." }
                    }
                    (delivery_facts(s, delivery, message_id, event_type, vec![
                        ("Status", badge(task.status.as_str())),
                        ("Queued", html! { (time(task.created_at)) }),
                    ]))
                    h2 { "Attempts" }
                    (none_yet("No attempt yet."))
                    @if !task.errors.is_empty() {
                        h2 { "Why it was given up" }
                        (errors_table(&task.errors))
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{academic, names, HOSTILE};
    use super::*;
    use campus_core::ids::{TaskId, WebhookId};
    use campus_core::Timestamp;
    use campus_ports::DeliveryAttempt;
    use std::time::Duration;

    fn subscription(enabled: bool) -> WebhookSubscription {
        WebhookSubscription {
            id: WebhookId(5),
            institution_id: InstitutionId(2),
            url: format!("https://hooks.test/{HOSTILE}"),
            event_types: vec!["ClassCreated".into(), "StudentEnrolled".into()],
            description: format!("ours {HOSTILE}"),
            enabled,
            disabled_reason: (!enabled).then(|| format!("410 Gone {HOSTILE}")),
            created_at: Timestamp(1_767_225_600_000),
            updated_at: Timestamp(1_767_225_601_000),
        }
    }

    fn summary(
        task: u128,
        attempts: u32,
        last: Option<u16>,
        state: DeliveryState,
    ) -> DeliverySummary {
        DeliverySummary {
            task_id: TaskId(task),
            message_id: format!("msg {HOSTILE}"),
            event_type: "ClassCreated".into(),
            attempts,
            last_status: last,
            last_error: last.is_none().then(|| format!("refused {HOSTILE}")),
            first_at: Timestamp(1_767_225_600_000),
            last_at: Timestamp(1_767_225_602_000),
            state,
        }
    }

    fn attempt(n: u32, status: Option<u16>) -> LoggedAttempt {
        LoggedAttempt {
            attempt: DeliveryAttempt {
                task_id: TaskId(7),
                subscription_id: WebhookId(5),
                institution_id: InstitutionId(2),
                message_id: "m".into(),
                event_type: "ClassCreated".into(),
                attempt: n,
                status,
                duration: Duration::from_micros(12_345),
                response_excerpt: format!("body {HOSTILE}"),
                error: status.is_none().then(|| format!("timeout {HOSTILE}")),
            },
            at: Timestamp(1_767_225_600_000),
        }
    }

    #[test]
    fn health_is_the_share_of_attempts_answered_with_a_2xx() {
        let window = [
            summary(3, 2, Some(204), DeliveryState::Succeeded),
            summary(2, 3, Some(500), DeliveryState::Failed),
            summary(1, 1, None, DeliveryState::Retrying),
        ];
        let h = Health::of(&window, 200);
        assert_eq!(
            h,
            Health {
                attempts: 6,
                succeeded: 1,
                partial: false
            }
        );
        assert_eq!(h.rate(), Some(1.0 / 6.0));
        assert_eq!(Health::of(&[], 200).rate(), None);
        assert!(
            Health::of(&window, 3).partial,
            "a full page may leave some out"
        );
        let page = health(&h).into_string();
        assert!(
            page.contains("16.7%") && page.contains("(1 of 6 attempts)"),
            "{page}"
        );
        assert!(health(&Health::default())
            .into_string()
            .contains("no deliveries"));
    }

    #[test]
    fn the_pages_escape_what_they_show_and_keep_their_hooks() {
        let escaped = "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;'";
        let who = academic();
        let names = names();
        let h = Health {
            attempts: 4,
            succeeded: 3,
            partial: false,
        };
        let list = webhook_list(
            &FilterValues::default(),
            Some(InstitutionId(2)),
            &[(subscription(false), h)],
            &names,
            &who,
        )
        .into_string();
        let deliveries = [
            summary(9, 2, Some(204), DeliveryState::Succeeded),
            summary(8, 1, None, DeliveryState::Retrying),
        ];
        let detail = webhook_detail(
            &subscription(true),
            &h,
            &deliveries,
            &FilterValues::default(),
            Some(8),
            &names,
        )
        .into_string();
        let tried = DeliveryView::Tried(
            summary(9, 2, Some(204), DeliveryState::Succeeded),
            vec![attempt(1, None), attempt(2, Some(204))],
        );
        let delivery = delivery_detail(&subscription(true), 9, &tried, &who).into_string();
        for (name, page) in [
            ("list", &list),
            ("detail", &detail),
            ("delivery", &delivery),
        ] {
            assert!(!page.contains("<script>"), "{name}: {page}");
            assert!(page.contains(escaped), "{name}: {page}");
            assert!(page.contains(r#"id="live""#), "{name}");
        }
        assert!(list.contains(r#"<tr data-id="00000000-0000-0000-0000-000000000005""#));
        assert!(list.contains("75.0%") && list.contains("410 Gone"));
        assert!(
            !list.contains("select"),
            "an Academic chooses no institution"
        );
        assert!(detail.contains(r#"data-status="retrying""#));
        assert!(detail.contains(
            r#"href="/admin/webhooks/00000000-0000-0000-0000-000000000005?before=00000000-0000-0000-0000-000000000008""#
        ));
        assert!(delivery.contains(r#"id="redeliver""#));
        assert!(delivery.contains(
            r#"action="/admin/webhooks/00000000-0000-0000-0000-000000000005/deliveries/00000000-0000-0000-0000-000000000009/redeliver""#
        ));
        assert!(delivery.contains(r#"href="/admin/tasks/00000000-0000-0000-0000-000000000009""#));
        assert!(delivery.contains(r#"<tr data-attempt="2" data-status="204">"#));
        assert!(delivery.contains("12.3 ms") && delivery.contains("<pre"));
        assert!(delivery.contains(r#"name="csrf" value="csrf&quot;token""#));
        let retrying = DeliveryView::Tried(
            summary(9, 1, Some(500), DeliveryState::Retrying),
            vec![attempt(1, Some(500))],
        );
        let page = delivery_detail(&subscription(true), 9, &retrying, &who).into_string();
        assert!(!page.contains(r#"id="redeliver""#), "not while it is tried");
    }

    #[test]
    fn an_adm_is_asked_to_choose_an_institution() {
        let mut adm = academic();
        adm.institution_id = None;
        let page = webhook_list(&FilterValues::default(), None, &[], &names(), &adm).into_string();
        assert!(page.contains(r#"select name="institution_id""#), "{page}");
        assert!(page.contains("Choose an institution"), "{page}");
        let none = webhook_list(
            &FilterValues::default(),
            Some(InstitutionId(1)),
            &[],
            &names(),
            &adm,
        )
        .into_string();
        assert!(
            none.contains("Alpha College has no webhook subscription."),
            "{none}"
        );
    }
}
