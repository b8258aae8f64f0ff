//! The SQL of the list filters: scoping, the id bounds a time range implies, and the
//! conditions both lists share.

use campus_core::ids::*;
use campus_ports::ListFilter;
use sqlx::{Postgres, QueryBuilder};

/// The institution filter after scoping: `Err(())` when the caller asks for another
/// institution than their own (the answer is then empty / not found).
pub(super) fn scoped(
    asked: Option<InstitutionId>,
    scope: Option<InstitutionId>,
) -> Result<Option<InstitutionId>, ()> {
    match (asked, scope) {
        (Some(a), Some(s)) if a != s => Err(()),
        (a, s) => Ok(s.or(a)),
    }
}

/// Ids are UUIDv7, minted when the row is written: their first 48 bits are its time in
/// milliseconds. A time filter therefore also bounds the id, which lets PostgreSQL walk the
/// primary key instead of the whole table. The margin absorbs clock skew between the hosts
/// that mint ids and the database that stamps times; the exact time condition still applies.
pub(super) const ID_TIME_MARGIN_MS: i64 = 10 * 60 * 1000;

/// The smallest UUIDv7 of millisecond `ms` (clamped to the 48-bit range).
pub(super) fn id_floor(ms: i64) -> uuid::Uuid {
    let ms = ms.clamp(0, (1 << 48) - 1) as u128;
    uuid::Uuid::from_u128(ms << 80)
}

/// Whether `f` has a filter both lists share that may leave few rows (a time range, errors),
/// besides the institution.
pub(super) fn narrows(f: &ListFilter) -> bool {
    f.from.is_some() || f.to.is_some() || f.has_errors.is_some()
}

/// A LIKE pattern matching `text` anywhere, with LIKE's wildcards escaped.
pub(crate) fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The conditions of the filters both lists share: `institution` (after scoping), `f`'s
/// others with times on `time_column`, and `before` (the keyset).
pub(super) fn push_common(
    qb: &mut QueryBuilder<'_, Postgres>,
    institution: Option<InstitutionId>,
    f: &ListFilter,
    time_column: &str,
    before: Option<u128>,
) {
    if let Some(i) = institution {
        qb.push(" AND institution_id = ")
            .push_bind(uuid::Uuid::from_u128(i.0));
    }
    if let Some(from) = f.from {
        qb.push(format!(" AND {time_column} >= "))
            .push_bind(crate::dto::time(from))
            .push(" AND id >= ")
            .push_bind(id_floor(from.0 - ID_TIME_MARGIN_MS));
    }
    if let Some(to) = f.to {
        qb.push(format!(" AND {time_column} < "))
            .push_bind(crate::dto::time(to))
            .push(" AND id < ")
            .push_bind(id_floor(to.0.saturating_add(ID_TIME_MARGIN_MS)));
    }
    if let Some(corr) = &f.correlation_id {
        // A copy is found by its original's correlation id and by the operator's request id.
        qb.push(" AND (correlation_id = ")
            .push_bind(corr.clone())
            .push(" OR reprocess_request_id = ")
            .push_bind(corr.clone())
            .push(")");
    }
    match f.has_errors {
        Some(true) => {
            qb.push(" AND errors <> '[]'::jsonb");
        }
        Some(false) => {
            qb.push(" AND errors = '[]'::jsonb");
        }
        None => {}
    }
    if let Some(text) = f.text.as_deref().filter(|t| !t.is_empty()) {
        qb.push(" AND payload::text ILIKE ")
            .push_bind(contains_pattern(text));
    }
    if let Some(before) = before {
        qb.push(" AND id < ")
            .push_bind(uuid::Uuid::from_u128(before));
    }
}
