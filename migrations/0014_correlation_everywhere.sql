-- One correlation id from the request to every effect (issue 15).
--
-- A notification carries the correlation id of the task that created it (the request's).
-- A reprocessed copy keeps its original's correlation id; the id of the operator's request
-- that made it goes into `reprocess_request_id` (a reprocessed event's tasks inherit it), so
-- the admin lists' `correlation_id` filter finds a copy by either id. On the live tables and
-- their archives alike (the archive copies rows by column name). Nullable columns without a
-- default: no table is rewritten.
ALTER TABLE notifications ADD COLUMN correlation_id text;
ALTER TABLE domain_events ADD COLUMN reprocess_request_id text;
ALTER TABLE domain_events_processed ADD COLUMN reprocess_request_id text;
ALTER TABLE tasks ADD COLUMN reprocess_request_id text;
ALTER TABLE tasks_processed ADD COLUMN reprocess_request_id text;

-- The archive answers the correlation filter through an index (0010); the same filter now
-- also matches `reprocess_request_id`, which only copies have. Only the archive job writes
-- these tables (as for 0011's index, no CONCURRENTLY needed). The live tables have no
-- correlation index (docs/PERFORMANCE.md) and get none here.
CREATE INDEX domain_events_processed_reprocess_request ON domain_events_processed (reprocess_request_id)
    WHERE reprocess_request_id IS NOT NULL;
CREATE INDEX tasks_processed_reprocess_request ON tasks_processed (reprocess_request_id)
    WHERE reprocess_request_id IS NOT NULL;
