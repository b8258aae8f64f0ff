//! Operator controls: cancel a task that has not started, pause/resume a task type (the
//! `task_type_controls` table every daemon's claim reads), and the per-type counts the
//! operators' list of task types shows.

use super::{db_err, Channel, PgStore};
use campus_core::engine::{TaskState, TaskStatus, TaskTransition};
use campus_core::ids::{InstitutionId, TaskId};
use campus_ports::{PortError, TaskControl, TypeCounts};
use sqlx::Row;

#[async_trait::async_trait]
impl TaskControl for PgStore {
    async fn cancel_task(&self, id: TaskId, scope: Option<InstitutionId>) -> Result<(), PortError> {
        let id = uuid::Uuid::from_u128(id.0);
        let scope = scope.map(|s| uuid::Uuid::from_u128(s.0));
        // One statement, fenced like a completion: it waits for a claim holding the row and
        // then re-reads it, so a task claimed meanwhile is running and is not cancelled.
        let cancelled = sqlx::query(
            "UPDATE tasks SET status = 'cancelled', finished_at = now()
             WHERE id = $1 AND status IN ('pending', 'retrying')
               AND ($2::uuid IS NULL OR institution_id = $2)",
        )
        .bind(id)
        .bind(scope)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        if cancelled == 1 {
            self.notifier.poke(Channel::Changes);
            return Ok(());
        }
        let row = sqlx::query("SELECT status, institution_id FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Err(PortError::NotFound("task"));
        };
        if scope.is_some() && row.get::<Option<uuid::Uuid>, _>("institution_id") != scope {
            return Err(PortError::NotFound("task"));
        }
        let status: String = row.get("status");
        let refused = TaskStatus::parse(&status).map(|s| {
            TaskState {
                status: s,
                attempt: 0,
                max_attempts: 1,
            }
            .apply(TaskTransition::Cancel)
        });
        Err(PortError::Conflict(match refused {
            Some(Err(e)) => format!("{e}: only pending or retrying tasks can be cancelled"),
            _ => format!("the task is {status}; only pending or retrying tasks can be cancelled"),
        }))
    }

    async fn set_paused(&self, task_type: &str, paused: bool) -> Result<(), PortError> {
        sqlx::query(
            "INSERT INTO task_type_controls (task_type, paused) VALUES ($1, $2)
             ON CONFLICT (task_type) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now()",
        )
        .bind(task_type)
        .bind(paused)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        // A resumed type's waiting tasks are due now.
        self.notifier.poke(Channel::Tasks);
        self.notifier.poke(Channel::Changes);
        Ok(())
    }

    async fn paused_types(&self) -> Result<Vec<String>, PortError> {
        sqlx::query_scalar(
            "SELECT task_type FROM task_type_controls WHERE paused ORDER BY task_type",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn type_counts(&self, types: &[String]) -> Result<Vec<TypeCounts>, PortError> {
        // One count per status group, each through its own partial index.
        let rows = sqlx::query(
            "SELECT t.task_type,
                (SELECT count(*) FROM tasks WHERE status IN ('pending', 'retrying') AND task_type = t.task_type) AS waiting,
                (SELECT count(*) FROM tasks WHERE status = 'running' AND task_type = t.task_type) AS running,
                (SELECT count(*) FROM tasks WHERE status IN ('dead', 'cancelled') AND status = 'dead'
                    AND task_type = t.task_type) AS dead
             FROM UNNEST($1::text[]) WITH ORDINALITY AS t(task_type, n)
             ORDER BY t.n",
        )
        .bind(types)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| TypeCounts {
                task_type: r.get("task_type"),
                waiting: r.get("waiting"),
                running: r.get("running"),
                dead: r.get("dead"),
            })
            .collect())
    }
}
