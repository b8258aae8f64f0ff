//! The login page of the admin screen (it has no header: nobody is signed in yet).

use super::layout::document;
use maud::{html, Markup};

/// The login page; `error` explains a refused attempt.
pub fn login(csrf: &str, next: &str, email: &str, error: Option<&str>) -> Markup {
    let body = html! {
        main.bare {
            form.login method="post" action="/admin/login" {
                h1 { "Campus admin" }
                p.muted {
                    "For Adm users (every institution) and Academic users (their institution)."
                }
                @if let Some(error) = error {
                    p.flash.error role="alert" { (error) }
                }
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="email" { "E-mail" }
                input #email name="email" type="email" value=(email) required
                    autocomplete="username" autofocus;
                label for="password" { "Password" }
                input #password name="password" type="password" required
                    autocomplete="current-password";
                button.primary type="submit" { "Log in" }
            }
        }
    };
    document("Log in", None, body)
}
