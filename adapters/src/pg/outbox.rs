//! The transactional outbox: events are inserted with the rows of the aggregate that
//! recorded them, inside the caller's transaction.

use super::db_err;
use crate::dto::{event_payload, uuid};
use campus_core::DomainEvent;
use campus_ports::{EventContext, NewEvent, PortError};
use sqlx::{Postgres, Transaction};

/// A row of `domain_events` ready to insert.
pub(crate) struct EventRow {
    pub id: uuid::Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: uuid::Uuid,
    pub institution_id: Option<uuid::Uuid>,
    pub payload: serde_json::Value,
    pub correlation_id: Option<String>,
    pub actor_id: Option<uuid::Uuid>,
    pub reprocessed_from: Option<uuid::Uuid>,
}

impl EventRow {
    pub fn from_domain(event: &DomainEvent, ctx: &EventContext) -> Self {
        let (aggregate_type, aggregate_id) = event.aggregate();
        EventRow {
            id: uuid::Uuid::now_v7(),
            event_type: event.event_type().to_string(),
            aggregate_type: aggregate_type.to_string(),
            aggregate_id: uuid(aggregate_id),
            institution_id: event.institution_id().map(|i| uuid(i.0)),
            payload: event_payload(event),
            correlation_id: ctx.correlation_id.clone(),
            actor_id: ctx.actor_id.map(|a| uuid(a.0)),
            reprocessed_from: None,
        }
    }

    /// The row of an event appended through the port (`EventStore::append`), with a new id.
    /// Errors: `Conflict` if its payload is not JSON.
    pub fn from_new(e: &NewEvent) -> Result<Self, PortError> {
        let payload = serde_json::from_str(&e.payload)
            .map_err(|err| PortError::Conflict(format!("event payload is not JSON: {err}")))?;
        Ok(EventRow {
            id: uuid::Uuid::now_v7(),
            event_type: e.event_type.clone(),
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: uuid(e.aggregate_id),
            institution_id: e.institution_id.map(|i| uuid(i.0)),
            payload,
            correlation_id: e.correlation_id.clone(),
            actor_id: None,
            reprocessed_from: None,
        })
    }
}

/// Inserts `rows` with one statement. Returns how many were inserted.
pub(crate) async fn insert_rows(
    tx: &mut Transaction<'_, Postgres>,
    rows: Vec<EventRow>,
) -> Result<usize, PortError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let n = rows.len();
    crate::telemetry::events_recorded(rows.iter().map(|r| r.event_type.as_str()));
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut agg_types = Vec::with_capacity(n);
    let mut agg_ids = Vec::with_capacity(n);
    let mut institutions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut correlations = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut origins = Vec::with_capacity(n);
    for r in rows {
        ids.push(r.id);
        types.push(r.event_type);
        agg_types.push(r.aggregate_type);
        agg_ids.push(r.aggregate_id);
        institutions.push(r.institution_id);
        payloads.push(r.payload);
        correlations.push(r.correlation_id);
        actors.push(r.actor_id);
        origins.push(r.reprocessed_from);
    }
    sqlx::query(
        "INSERT INTO domain_events
            (id, event_type, aggregate_type, aggregate_id, institution_id, payload, correlation_id, actor_id, reprocessed_from)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::jsonb[], $7::text[],
                              $8::uuid[], $9::uuid[])",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&agg_types)
    .bind(&agg_ids)
    .bind(&institutions)
    .bind(&payloads)
    .bind(&correlations)
    .bind(&actors)
    .bind(&origins)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(n)
}

/// Inserts the domain events recorded by aggregates, tagged with the request context.
pub(crate) async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: Vec<DomainEvent>,
    ctx: &EventContext,
) -> Result<usize, PortError> {
    insert_rows(
        tx,
        events
            .iter()
            .map(|e| EventRow::from_domain(e, ctx))
            .collect(),
    )
    .await
}

impl super::PgStore {
    /// Inserts the events recorded by the transaction's aggregates, commits, then wakes the
    /// dispatcher (after commit, never inside the transaction).
    pub(crate) async fn commit_with_events(
        &self,
        mut tx: Transaction<'_, Postgres>,
        events: Vec<DomainEvent>,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let inserted = insert_events(&mut tx, events, ctx).await?;
        tx.commit().await.map_err(db_err)?;
        if inserted > 0 {
            self.notifier.poke(super::Channel::Events);
        }
        Ok(())
    }
}
