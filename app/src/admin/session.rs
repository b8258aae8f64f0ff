//! Who is signed in: the session and login-CSRF cookies (through poem's `CookieJar`), the
//! operator a request's session names, and the CSRF check of state-changing forms
//! (constant-time, with `subtle`).

use super::respond::{error_page, failure};
use super::views;
use crate::web::State;
use campus_core::ids::InstitutionId;
use campus_ports::OperatorSession;
use poem::http::StatusCode;
use poem::web::cookie::{Cookie, SameSite};
use poem::web::Redirect;
use poem::{IntoResponse, Request, Response};
use serde::Deserialize;
use std::time::Duration;
use subtle::ConstantTimeEq;

pub(super) const SESSION_COOKIE: &str = "campus_session";
pub(super) const LOGIN_CSRF_COOKIE: &str = "campus_login_csrf";

/// The value of cookie `name` as the browser sent it (empty when absent).
pub(super) fn cookie(req: &Request, name: &str) -> String {
    req.cookie()
        .get(name)
        .map(|c| c.value_str().to_string())
        .unwrap_or_default()
}

/// Sets cookie `name` for `path` on the response: HttpOnly, SameSite=Lax, Secure when the
/// public URL is https; `max_age` zero removes it.
pub(super) fn set_cookie(
    req: &Request,
    state: &State,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) {
    let mut c = Cookie::new_with_str(name, value);
    c.set_path(path);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_max_age(Duration::from_secs(max_age));
    c.set_secure(state.secure_cookies);
    req.cookie().add(c);
}

/// Compares secrets in time independent of where they differ.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The signed-in operator, or the response to send instead (the login page for pages).
pub(super) async fn operator(req: &Request, state: &State) -> Result<OperatorSession, Response> {
    match state.sessions.find(&cookie(req, SESSION_COOKIE)).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => {
            // The full path: under the nest, `uri()` lacks the `/admin` prefix.
            let here = req
                .original_uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/admin");
            let next = if req.method() == poem::http::Method::GET {
                here
            } else {
                "/admin"
            };
            Err(
                Redirect::see_other(views::link("/admin/login", &[("next", next.into())]))
                    .into_response(),
            )
        }
        Err(e) => Err(failure(req, e)),
    }
}

pub(super) fn scope_of(op: &OperatorSession) -> Option<InstitutionId> {
    op.institution_id
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

/// The signed-in operator who sent a form, or the response to send instead: [`operator`]'s,
/// or a refusal when the form's CSRF token is not the session's.
pub(super) async fn form_operator(
    req: &Request,
    state: &State,
    given: &str,
) -> Result<OperatorSession, Response> {
    let op = operator(req, state).await?;
    if same_secret(&op.csrf_token, given) {
        Ok(op)
    } else {
        Err(error_page(
            req,
            StatusCode::FORBIDDEN,
            "csrf",
            "This form is out of date or did not come from the admin screen. Reload the page and try again.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
