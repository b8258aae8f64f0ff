-- no-transaction
-- From this migration on, indexes on existing tables are built CONCURRENTLY (and constraints
-- added NOT VALID, then validated), so that an upgrade never blocks the queue's writes.
-- CONCURRENTLY cannot run in a transaction, hence the directive above, and PostgreSQL runs a
-- string of several statements as one transaction: one statement per such file. IF NOT
-- EXISTS lets a rerun after an interrupted build complete (drop an INVALID leftover first).
--
-- An Academic's lists (API and admin screen) of one institution, newest first: without it a
-- small institution's page walks the whole table for its few rows.
CREATE INDEX CONCURRENTLY IF NOT EXISTS domain_events_institution ON domain_events (institution_id, id);
