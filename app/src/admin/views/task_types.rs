//! The task types this release runs: their options, how many tasks wait, run or are dead,
//! and (for Adm users, since a type is shared by every institution) pause and resume.

use super::parts::{badge, link, none_yet};
use crate::services::operations::TaskTypeInfo;
use campus_core::values::Role;
use campus_ports::OperatorSession;
use maud::{html, Markup};

/// A form that pauses or resumes `t` for every daemon.
fn pause_form(t: &TaskTypeInfo, csrf: &str) -> Markup {
    let (action, label) = if t.paused {
        ("resume", "Resume")
    } else {
        ("pause", "Pause")
    };
    html! {
        form.inline method="post" action=(format!("/admin/task-types/{}/{action}", t.task_type)) data-async {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" data-type=(t.task_type) { (label) span.visually-hidden { " " (t.task_type) } }
        }
    }
}

/// The task types page body.
pub fn task_types(types: &[TaskTypeInfo], who: &OperatorSession) -> Markup {
    let adm = who.role == Role::Adm;
    html! {
        h1 { "Task types" }
        p.muted {
            "A paused type is not claimed by any daemon: its tasks wait (running ones finish). "
            @if !adm { "Only an Adm user pauses and resumes types: each is shared by every institution." }
        }
        div #live {
            @if types.is_empty() {
                (none_yet("No task type is registered."))
            } @else {
                table #task-types {
                    thead { tr {
                        th scope="col" { "Type" } th scope="col" { "State" }
                        th scope="col" { "Waiting" } th scope="col" { "Running" } th scope="col" { "Dead" }
                        th scope="col" { "At once per daemon" } th scope="col" { "Timeout" }
                        th scope="col" { "Attempts" }
                        @if adm { th scope="col" { "Action" } }
                    } }
                    tbody {
                        @for t in types {
                            tr data-type=(t.task_type) data-paused=(t.paused) {
                                td { a href=(link("/admin/tasks", &[("task_type", t.task_type.clone())])) { (t.task_type) } }
                                td { (badge(if t.paused { "paused" } else { "active" })) }
                                td.num { (t.counts.waiting) }
                                td.num { (t.counts.running) }
                                td.num { (t.counts.dead) }
                                td { (t.concurrency.map_or_else(|| "no limit".to_string(), |n| n.to_string())) }
                                td { (humantime::format_duration(t.timeout)) }
                                td { (t.max_attempts) }
                                @if adm { td { (pause_form(t, &who.csrf_token)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
