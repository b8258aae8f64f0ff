//! The whole HTTP application: the API with its document and Swagger UI, the admin screen and
//! the reset-password page, around the request context of [`crate::web`].

use crate::{admin, api, web};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};

/// What `campus daemon` answers on `CAMPUS_DAEMON_ADDR`: its health and its metrics.
pub fn daemon_routes(state: web::State) -> impl Endpoint {
    let ops = poem_openapi::OpenApiService::new(
        api::ops::OpsApi,
        "Campus daemon",
        env!("CARGO_PKG_VERSION"),
    );
    Route::new()
        .nest("/", ops)
        .at("/metrics", poem::get(web::metrics::scrape))
        .data(state)
        .into_endpoint()
}

/// The whole HTTP application.
pub fn routes(state: web::State) -> impl Endpoint {
    let openapi = api::openapi("/");
    let docs = openapi.swagger_ui();
    let spec = openapi.spec_endpoint();
    Route::new()
        .nest("/", openapi)
        .nest("/docs", docs)
        .nest("/admin", admin::routes())
        .at("/openapi.json", spec)
        .at("/metrics", poem::get(web::metrics::scrape))
        .at(
            "/reset-password",
            poem::get(api::pages::reset_form)
                .post(api::pages::reset_submit)
                .around(api::pages::secure_headers),
        )
        .around(web::metrics::observe)
        .data(state.jwt.clone())
        .data(state)
        .around(web::request::frame)
        .into_endpoint()
}
