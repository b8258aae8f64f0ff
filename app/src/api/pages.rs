//! The reset-password page a person opens from the e-mailed link: a small form that sets
//! the new password without JavaScript.

use crate::services::AppError;
use crate::web::page::protect_page;
use crate::web::{event_context, State};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use poem::http::StatusCode;
use poem::web::{Data, Form, Html, Query};
use poem::{handler, IntoResponse, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
    confirm: String,
}

/// The page carries a token in its URL: it is never cached, framed, or sent on as a
/// referrer, and it loads nothing (its one inline style is all it may use).
pub async fn secure_headers<E: poem::Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let mut resp = next.call(req).await?.into_response();
    protect_page(
        &mut resp,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        "no-referrer",
    );
    Ok(resp)
}

/// The page's only styling (the page may load nothing, see `secure_headers`).
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;\
padding:0 1rem;color:#1f2937}label{display:block;margin:.8rem 0 .2rem}\
input{width:100%;padding:.5rem;box-sizing:border-box}button{margin-top:1rem;\
padding:.6rem 1rem;background:#2563eb;color:#fff;border:0;border-radius:4px}\
.err{color:#b91c1c}.ok{color:#15803d}";

fn page(status: StatusCode, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { "Campus · Reset password" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "Reset your password" }
                    (body)
                }
            }
        }
    };
    Html(html).with_status(status).into_response()
}

/// A sentence of the page: `class` is `err` or `ok`.
fn say(class: &str, text: &str) -> Markup {
    html! { p class=(class) { (text) } }
}

fn form(token: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.err role="alert" { (error) }
        }
        form method="post" action="/reset-password" {
            input type="hidden" name="token" value=(token);
            label for="password" { "New password (8 to 128 characters)" }
            input #password name="password" type="password" minlength="8" maxlength="128"
                required autocomplete="new-password";
            label for="confirm" { "Repeat the new password" }
            input #confirm name="confirm" type="password" minlength="8" maxlength="128"
                required autocomplete="new-password";
            button type="submit" { "Set password" }
        }
    }
}

#[handler]
pub async fn reset_form(Query(q): Query<TokenQuery>) -> Response {
    match q.token.filter(|t| !t.is_empty()) {
        Some(token) => page(StatusCode::OK, form(&token, None)),
        None => page(
            StatusCode::BAD_REQUEST,
            say("err", "This link has no token. Ask for a new reset e-mail."),
        ),
    }
}

#[handler]
pub async fn reset_submit(
    state: Data<&State>,
    req: &Request,
    Form(f): Form<ResetForm>,
) -> Response {
    if f.password != f.confirm {
        return page(
            StatusCode::BAD_REQUEST,
            form(&f.token, Some("The two passwords differ.")),
        );
    }
    match state
        .accounts
        .reset_password(&f.token, &f.password, &event_context(req))
        .await
    {
        Ok(()) => page(
            StatusCode::OK,
            say(
                "ok",
                "Your password was changed. You can log in with it now.",
            ),
        ),
        Err(AppError::Invalid(e)) => page(
            StatusCode::BAD_REQUEST,
            form(&f.token, Some(&e.to_string())),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "reset form failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                say("err", "Something went wrong. Try again in a moment."),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let body = futures::executor::block_on(r.into_body().into_string()).unwrap();
        (status, body)
    }

    #[test]
    fn the_token_and_the_error_are_escaped() {
        let hostile = r#"<script>alert("x&y")</script>"#;
        let (status, html) = text(page(StatusCode::BAD_REQUEST, form(hostile, Some(hostile))));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(!html.contains("<script>"), "{html}");
        let escaped = "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;";
        assert!(
            html.contains(&format!(r#"name="token" value="{escaped}""#)),
            "{html}"
        );
        assert!(
            html.contains(&format!(r#"role="alert">{escaped}</p>"#)),
            "{html}"
        );
        assert!(
            html.contains("<main><h1>Reset your password</h1>"),
            "{html}"
        );
    }
}
