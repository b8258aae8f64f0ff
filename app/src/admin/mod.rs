//! The admin screen at `/admin`, served by the app with no front-end build: server-rendered
//! pages over the operators' read side (`OperationsService`), a login with an HttpOnly,
//! SameSite session cookie, a CSRF token on every state-changing form, and live updates
//! over server-sent events (`crate::web::live`). An Adm user sees every institution, an
//! Academic user only their own: the scope comes from the session, never from the page.
//!
//! This module routes and sets the screen's headers; `session` knows who is signed in,
//! `login` signs in and out, `filters` reads the URL, `lists`, `details` and `actions` are
//! the pages and forms, `webhooks` the Webhooks section (subscriptions, deliveries,
//! redelivery), `respond` shapes answers and errors, `views` renders HTML, `assets` serves
//! the stylesheet and script.

mod actions;
mod assets;
mod details;
mod filters;
mod lists;
mod login;
mod respond;
mod session;
pub mod views;
mod webhooks;

use crate::web;
use poem::middleware::CookieJarManager;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};

/// Every page and form of the admin screen, under `/admin`.
pub fn routes() -> impl Endpoint {
    Route::new()
        .at("/", web::methods::get(lists::overview))
        .at(
            "/login",
            web::methods::get(login::login_form).post(login::login),
        )
        .at("/logout", web::methods::post(login::logout))
        .at("/events", web::methods::get(lists::event_list))
        .at("/events/:id", web::methods::get(details::event_detail))
        .at(
            "/events/:id/reprocess",
            web::methods::post(actions::reprocess_event),
        )
        .at(
            "/audit/:aggregate_type/:aggregate_id",
            web::methods::get(details::audit_trail),
        )
        .at("/tasks", web::methods::get(lists::task_list))
        .at(
            "/tasks/reprocess",
            web::methods::post(actions::reprocess_tasks),
        )
        .at("/tasks/:id", web::methods::get(details::task_detail))
        .at(
            "/tasks/:id/reprocess",
            web::methods::post(actions::reprocess_task),
        )
        .at(
            "/tasks/:id/cancel",
            web::methods::post(actions::cancel_task),
        )
        .at("/task-types", web::methods::get(lists::task_types))
        .at(
            "/task-types/:task_type/:action",
            web::methods::post(actions::pause_or_resume),
        )
        .at("/webhooks", web::methods::get(webhooks::webhook_list))
        .at("/webhooks/:id", web::methods::get(webhooks::webhook_detail))
        .at(
            "/webhooks/:id/deliveries/:delivery_id",
            web::methods::get(webhooks::delivery_detail),
        )
        .at(
            "/webhooks/:id/deliveries/:delivery_id/redeliver",
            web::methods::post(webhooks::redeliver),
        )
        .at("/live", web::methods::get(lists::live_updates))
        .at("/assets/admin.css", web::methods::get(assets::stylesheet))
        .at("/assets/admin.js", web::methods::get(assets::script))
        .with(CookieJarManager::new())
        .around(secure_headers)
}

/// Pages are never cached, framed, or allowed to load anything from elsewhere.
async fn secure_headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let mut resp = next.call(req).await?.into_response();
    crate::web::page::protect_page(
        &mut resp,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "same-origin",
    );
    Ok(resp)
}
