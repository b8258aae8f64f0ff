//! The whole HTTP application: the API with its document and Swagger UI, the admin screen and
//! the reset-password page, around the request context of [`crate::web`].

use crate::{admin, api, web};
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Route};
use std::sync::Arc;

/// What `campus daemon` answers on `CAMPUS_DAEMON_ADDR`: its health and its metrics.
pub fn daemon_routes(state: web::State) -> impl Endpoint {
    let ops = poem_openapi::OpenApiService::new(
        api::ops::OpsApi,
        "Campus daemon",
        env!("CARGO_PKG_VERSION"),
    );
    Route::new()
        .nest("/", ops)
        .at("/metrics", web::methods::get(web::metrics::scrape))
        .data(state)
        .into_endpoint()
}

/// The whole HTTP application.
pub fn routes(state: web::State) -> impl Endpoint {
    let openapi = api::openapi("/");
    let document = api::openapi_json();
    // The UI embeds the document; it shows the completed one (see `api::contract`).
    let docs = openapi
        .swagger_ui_html()
        .replace(&openapi.spec(), &document);
    let allowed = Arc::new(api::contract::AllowedMethods::of(&document));
    let api = openapi.around(move |next, req| allow_header(next, req, allowed.clone()));
    Route::new()
        .nest("/", api)
        .at(
            "/docs",
            web::methods::get(poem::endpoint::make_sync(move |_| Html(docs.clone()))),
        )
        .nest("/admin", admin::routes())
        .at(
            "/openapi.json",
            web::methods::get(poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(document.clone())
            })),
        )
        .at("/metrics", web::methods::get(web::metrics::scrape))
        .at(
            "/reset-password",
            web::methods::get(api::pages::reset_form)
                .post(api::pages::reset_submit)
                .around(api::pages::secure_headers),
        )
        .around(web::metrics::observe)
        .data(state.jwt.clone())
        .data(state)
        .around(web::request::frame)
        .into_endpoint()
}

/// A `405` from the API names the methods its path allows (`Allow`), as HTTP requires.
async fn allow_header<E: Endpoint>(
    next: E,
    req: Request,
    allowed: Arc<api::contract::AllowedMethods>,
) -> poem::Result<poem::Response> {
    let path = req.uri().path().to_string();
    match next.call(req).await {
        Err(e) if e.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED => {
            let mut resp = web::error::json_error(e).await;
            if let Some(allow) = allowed.for_path(&path) {
                if let Ok(v) = poem::http::HeaderValue::from_str(allow) {
                    resp.headers_mut().insert(poem::http::header::ALLOW, v);
                }
            }
            Ok(resp)
        }
        other => other.map(IntoResponse::into_response),
    }
}
