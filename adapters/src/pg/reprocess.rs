//! What reprocessing an event and a task share: lock the original (live or archived), check
//! it may be copied.

use super::db_err;
use campus_core::ids::InstitutionId;
use campus_ports::PortError;
use sqlx::{Postgres, Row, Transaction};

/// What differs between reprocessing an event and a task.
pub(crate) struct Reprocessable {
    pub table: &'static str,
    /// `event` or `task`, for messages.
    pub noun: &'static str,
    /// SQL list of the statuses of a copy still waiting, e.g. `('pending', 'retrying')`.
    pub waiting: &'static str,
    /// Whether an original in this status may be copied.
    pub can_reprocess: fn(&str) -> bool,
    /// Why not, after "the {noun} is {status}; ".
    pub refusal: &'static str,
    /// Said when a copy is already waiting.
    pub copy_waiting: &'static str,
}

/// Locks the original row (which is never modified) so concurrent reprocesses serialize, and
/// checks that it exists within `scope`, may be reprocessed and has no copy waiting. On a
/// refusal it rolls back at once, so the lock does not outlive the answer.
pub(crate) async fn lock_original<'c>(
    mut tx: Transaction<'c, Postgres>,
    what: &Reprocessable,
    original: uuid::Uuid,
    scope: Option<InstitutionId>,
) -> Result<Transaction<'c, Postgres>, PortError> {
    let checked: Result<(), PortError> = async {
        // Live first; an archived original (finished, so copyable) makes a live copy too.
        let mut row = None;
        for table in [what.table.to_string(), format!("{}_processed", what.table)] {
            row = sqlx::query(&format!(
                "SELECT status, institution_id FROM {table} WHERE id = $1 FOR UPDATE"
            ))
            .bind(original)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if row.is_some() {
                break;
            }
        }
        let Some(row) = row else {
            return Err(PortError::NotFound(what.noun));
        };
        let institution: Option<uuid::Uuid> = row.get("institution_id");
        if scope.is_some_and(|s| institution != Some(uuid::Uuid::from_u128(s.0))) {
            return Err(PortError::NotFound(what.noun));
        }
        let status: String = row.get("status");
        if !(what.can_reprocess)(&status) {
            return Err(PortError::Conflict(format!(
                "the {} is {status}; {}",
                what.noun, what.refusal
            )));
        }
        let waiting: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE reprocessed_from = $1 AND status IN {})",
            what.table, what.waiting
        ))
        .bind(original)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if waiting {
            return Err(PortError::Conflict(what.copy_waiting.into()));
        }
        Ok(())
    }
    .await;
    match checked {
        Ok(()) => Ok(tx),
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
