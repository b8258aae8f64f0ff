//! The frame of every page: the document head, the header with the navigation and the
//! operator, the flash message, and the bare pages (an error message) that have no header.

use super::parts::{institution_name, Names};
use campus_ports::OperatorSession;
use maud::{html, Markup, DOCTYPE};

/// Which top-level section a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Events,
    Tasks,
    TaskTypes,
    Webhooks,
}

/// A message at the top of a page.
pub enum Flash {
    None,
    Done(String),
    Error(String),
}

const NAV: [(Section, &str, &str); 5] = [
    (Section::Overview, "/admin", "Overview"),
    (Section::Events, "/admin/events", "Events"),
    (Section::Tasks, "/admin/tasks", "Tasks"),
    (Section::TaskTypes, "/admin/task-types", "Task types"),
    (Section::Webhooks, "/admin/webhooks", "Webhooks"),
];

/// `<head>` of a page titled `title`; `script` adds the live-update script.
fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width,initial-scale=1";
            title { (title) " · Campus admin" }
            link rel="stylesheet" href="/admin/assets/admin.css";
            @if script {
                script src="/admin/assets/admin.js" defer {}
            }
        }
    }
}

/// A whole document: doctype, `head` and `body`. A live page's body carries the live-update
/// version it was rendered at (see `web::live`).
pub(super) fn document(title: &str, live_version: Option<u64>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, live_version.is_some()))
            body data-live-version=[live_version] { (body) }
        }
    }
}

fn header(section: Section, who: &OperatorSession, names: &Names) -> Markup {
    html! {
        header.top {
            a.brand href="/admin" { "Campus admin" }
            nav {
                @for (s, href, label) in NAV {
                    a class=[(s == section).then_some("current")] href=(href) { (label) }
                }
            }
            span.who {
                span #live-dot .live-dot title="live updates" {}
                (who.name) " · "
                @match who.institution_id {
                    None => "Adm · all institutions",
                    Some(i) => { "Academic · " (institution_name(names, i)) },
                }
            }
            form method="post" action="/admin/logout" {
                input type="hidden" name="csrf" value=(who.csrf_token);
                button type="submit" { "Log out" }
            }
        }
    }
}

fn flash(flash: &Flash) -> Markup {
    html! {
        @match flash {
            Flash::None => div #flash {},
            Flash::Done(m) => div #flash .flash role="status" { (m) },
            Flash::Error(m) => div #flash .flash.error role="alert" { (m) },
        }
    }
}

/// The page around `body`: header, navigation, the operator, the flash.
pub fn layout(
    title: &str,
    section: Section,
    who: &OperatorSession,
    names: &Names,
    flash_message: &Flash,
    body: &Markup,
    live_version: u64,
) -> Markup {
    document(
        title,
        Some(live_version),
        html! {
            (header(section, who, names))
            main { (flash(flash_message)) (body) }
        },
    )
}

/// A page that only says what went wrong.
pub fn message(title: &str, text: &str) -> Markup {
    document(
        title,
        None,
        html! {
            main {
                h1 { (title) }
                p { (text) }
                p { a href="/admin" { "Back to the admin screen" } }
            }
        },
    )
}
