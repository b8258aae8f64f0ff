//! The reset-password page a person opens from the e-mailed link: a small form that sets
//! the new password without JavaScript.

use crate::services::AppError;
use crate::web::page::{escape, protect_page};
use crate::web::{event_context, State};
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

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Campus · Reset password</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#1f2937}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.6rem 1rem;background:#2563eb;color:#fff;border:0;border-radius:4px}}
.err{{color:#b91c1c}}.ok{{color:#15803d}}</style></head><body><h1>Reset your password</h1>{body}</body></html>"#
    );
    Html(html).with_status(status).into_response()
}

fn form(token: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="err" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    format!(
        r#"{error}<form method="post" action="/reset-password">
<input type="hidden" name="token" value="{}">
<label for="password">New password (8 to 128 characters)</label>
<input id="password" name="password" type="password" minlength="8" maxlength="128" required autocomplete="new-password">
<label for="confirm">Repeat the new password</label>
<input id="confirm" name="confirm" type="password" minlength="8" maxlength="128" required autocomplete="new-password">
<button type="submit">Set password</button></form>"#,
        escape(token)
    )
}

#[handler]
pub async fn reset_form(Query(q): Query<TokenQuery>) -> Response {
    match q.token.filter(|t| !t.is_empty()) {
        Some(token) => page(StatusCode::OK, &form(&token, None)),
        None => page(
            StatusCode::BAD_REQUEST,
            r#"<p class="err">This link has no token. Ask for a new reset e-mail.</p>"#,
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
            &form(&f.token, Some("The two passwords differ.")),
        );
    }
    match state
        .accounts
        .reset_password(&f.token, &f.password, &event_context(req))
        .await
    {
        Ok(()) => page(
            StatusCode::OK,
            r#"<p class="ok">Your password was changed. You can log in with it now.</p>"#,
        ),
        Err(AppError::Invalid(e)) => page(
            StatusCode::BAD_REQUEST,
            &form(&f.token, Some(&e.to_string())),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "reset form failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"<p class="err">Something went wrong. Try again in a moment.</p>"#,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
