-- no-transaction
-- An entity's audit trail among the live events (`GET /audit/{type}/{id}`).
CREATE INDEX CONCURRENTLY IF NOT EXISTS domain_events_aggregate ON domain_events (aggregate_id);
