//! The list of tasks: filters, the bulk reprocess form (when dead tasks can be listed), the
//! table (or why it is empty) and the pager.

use super::filters::{list_filters, pager, FilterValues, ListKind};
use super::parts::Names;
use super::tables::task_table;
use campus_ports::{OperatorSession, TaskView};
use maud::{html, Markup};

/// Reprocesses the dead tasks matching the list's filters (carried as hidden fields), at
/// most the number asked for, after a confirmation.
fn bulk_form(f: &FilterValues, who: &OperatorSession, bulk_limit: u32) -> Markup {
    let carried: Vec<(&str, String)> = f
        .pairs()
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !matches!(*k, "status" | "limit" | "has_errors"))
        .collect();
    html! {
        details.bulk {
            summary { "Reprocess the dead tasks matching these filters…" }
            form #bulk-reprocess method="post" action="/admin/tasks/reprocess" {
                input type="hidden" name="csrf" value=(who.csrf_token);
                @for (k, v) in &carried {
                    input type="hidden" name=(k) value=(v);
                }
                p {
                    "Each dead task matching the filters above gets a new copy that runs again \
                     (oldest first; a task whose copy is still waiting is skipped). The \
                     originals never change."
                }
                p.actions {
                    label {
                        "At most "
                        input name="limit" type="number" min="1" max=(bulk_limit) value="100";
                        " copies (up to " (bulk_limit) ")"
                    }
                    label {
                        input type="checkbox" name="confirm" value="yes" required;
                        " I want to reprocess them"
                    }
                    button.danger type="submit" { "Reprocess dead tasks" }
                }
            }
        }
    }
}

/// The task list page body, with the bulk reprocess form.
pub fn task_list(
    f: &FilterValues,
    tasks: &[TaskView],
    next_before: Option<u128>,
    names: &Names,
    who: &OperatorSession,
    bulk_limit: u32,
) -> Markup {
    let status = f.status.as_deref().unwrap_or_default();
    html! {
        h1 { "Tasks" }
        (list_filters(ListKind::Tasks, f, names, who))
        @if status.is_empty() || status == "dead" {
            (bulk_form(f, who, bulk_limit))
        }
        div #live {
            @if tasks.is_empty() {
                div.empty { "No task matches these filters." }
            } @else {
                (task_table("tasks", tasks, names))
            }
            (pager("/admin/tasks", f, next_before))
        }
    }
}
