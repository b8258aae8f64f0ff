//! Logging in and out of the screen: the login form (with its own CSRF cookie), the abuse
//! limits on attempts, the session cookie, and where to go afterwards.

use super::respond::failure;
use super::session::{
    cookie, form_operator, same_secret, set_cookie, CsrfForm, LOGIN_CSRF_COOKIE, SESSION_COOKIE,
};
use super::views;
use crate::services::AppError;
use crate::web::error::ApiError;
use crate::web::limits::Limit;
use crate::web::State;
use poem::http::{header, HeaderValue, StatusCode};
use poem::web::{Data, Form, Html, Query, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Where to go after logging in: only pages of the admin screen.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/admin/login") =>
        {
            n.to_string()
        }
        _ => "/admin".into(),
    }
}

/// The login form, with its CSRF token also in a cookie for `/admin/login`.
fn login_page(
    req: &Request,
    state: &State,
    csrf: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    set_cookie(req, state, LOGIN_CSRF_COOKIE, csrf, "/admin/login", 3600);
    Html(views::login(csrf, next, email, error))
        .with_status(status)
        .into_response()
}

#[handler]
pub(super) async fn login_form(
    req: &Request,
    Data(state): Data<&State>,
    Query(q): Query<NextParam>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Ok(Some(_)) = state.sessions.find(&cookie(req, SESSION_COOKIE)).await {
        return Redirect::see_other(next).into_response();
    }
    let csrf = state.sessions.vault.mint().plain;
    login_page(req, state, &csrf, &next, "", None, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[handler]
pub(super) async fn login(
    req: &Request,
    Data(state): Data<&State>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let expected = cookie(req, LOGIN_CSRF_COOKIE);
    if expected.is_empty() || !same_secret(&expected, &form.csrf) {
        let csrf = state.sessions.vault.mint().plain;
        return login_page(
            req,
            state,
            &csrf,
            &next,
            &form.email,
            Some("The login form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    if let Err(refusal) =
        state
            .limiter
            .check_both(req, Limit::LoginIp, Limit::LoginAccount, &form.email)
    {
        let mut resp = login_page(
            req,
            state,
            &expected,
            &next,
            &form.email,
            Some("Too many log-in attempts. Please wait a few minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
        if let ApiError::TooManyRequests(_, seconds) = refusal {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return resp;
    }
    match state.sessions.open(&form.email, &form.password).await {
        Ok((token, _)) => {
            let ttl = crate::services::sessions::SESSION_TTL.as_secs();
            set_cookie(req, state, SESSION_COOKIE, &token, "/admin", ttl);
            set_cookie(req, state, LOGIN_CSRF_COOKIE, "", "/admin/login", 0);
            Redirect::see_other(next).into_response()
        }
        Err(AppError::Unauthorized(_)) => login_page(
            req,
            state,
            &expected,
            &next,
            &form.email,
            Some("Invalid e-mail or password."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(AppError::Forbidden(m)) => login_page(
            req,
            state,
            &expected,
            &next,
            &form.email,
            Some(&m),
            StatusCode::FORBIDDEN,
        ),
        Err(e) => failure(req, e),
    }
}

#[handler]
pub(super) async fn logout(
    req: &Request,
    Data(state): Data<&State>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = form_operator(req, state, &form.csrf).await {
        return r;
    }
    if let Err(e) = state.sessions.close(&cookie(req, SESSION_COOKIE)).await {
        return failure(req, e);
    }
    set_cookie(req, state, SESSION_COOKIE, "", "/admin", 0);
    Redirect::see_other("/admin/login").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_pages_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/admin/tasks?status=dead")),
            "/admin/tasks?status=dead"
        );
        assert_eq!(safe_next(Some("https://evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("//evil.example")), "/admin");
        assert_eq!(safe_next(Some("/admin/login")), "/admin");
        assert_eq!(safe_next(None), "/admin");
    }
}
