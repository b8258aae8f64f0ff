//! What every server-rendered page shares (the admin screen's and the API's reset-password
//! page): its security headers. Its HTML is written with maud templates, which escape every
//! value they are given.

use poem::Response;

/// The headers of a server-rendered page: `csp`, never framed, sniffed or cached (unless the
/// page says otherwise), and `referrer` as the Referrer-Policy.
pub fn protect_page(resp: &mut Response, csp: &'static str, referrer: &'static str) {
    use poem::http::{header, HeaderValue};
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static(referrer));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
