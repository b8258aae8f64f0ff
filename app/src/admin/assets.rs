//! The screen's stylesheet and script, compiled into the binary.

use poem::http::header;
use poem::{handler, Response};

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(body)
}

#[handler]
pub(super) fn stylesheet() -> Response {
    asset(include_str!("assets/admin.css"), "text/css; charset=utf-8")
}

#[handler]
pub(super) fn script() -> Response {
    asset(
        include_str!("assets/admin.js"),
        "text/javascript; charset=utf-8",
    )
}
