-- The archive: finished events and tasks move out of the hot tables into these, by batches
-- that delete from the live table and insert here in one statement (see `pg/archive.rs`).
-- Each archive table has its live table's columns, in the same order, plus `archived_at`:
-- a migration that adds a column to `domain_events` or `tasks` adds it here too.
--
-- Links between rows (a task's origin event, a copy's original) now cross tables: a task may
-- stay live while its event is archived, a copy live while its original is archived. The
-- foreign keys that required both ends in the live table go; every reader looks in both.
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_event_id_fkey;
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_reprocessed_from_fkey;
ALTER TABLE domain_events DROP CONSTRAINT IF EXISTS domain_events_reprocessed_from_fkey;

CREATE TABLE domain_events_processed (
    LIKE domain_events INCLUDING DEFAULTS,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
-- The audit trail of one entity, oldest first; an Academic's lists; links by correlation id
-- and from copies.
CREATE INDEX domain_events_processed_aggregate
    ON domain_events_processed (aggregate_type, aggregate_id, occurred_at);
CREATE INDEX domain_events_processed_institution ON domain_events_processed (institution_id, id);
CREATE INDEX domain_events_processed_correlation ON domain_events_processed (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX domain_events_processed_reprocessed_from ON domain_events_processed (reprocessed_from)
    WHERE reprocessed_from IS NOT NULL;

CREATE TABLE tasks_processed (
    LIKE tasks INCLUDING DEFAULTS,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
CREATE INDEX tasks_processed_event ON tasks_processed (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX tasks_processed_institution ON tasks_processed (institution_id, id);
CREATE INDEX tasks_processed_correlation ON tasks_processed (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX tasks_processed_reprocessed_from ON tasks_processed (reprocessed_from)
    WHERE reprocessed_from IS NOT NULL;

-- Every archive run to its end (the daily one on the maintenance leader, and `campus
-- archive`): when it was due, what it moved. A new leader runs a day's run no one recorded.
CREATE TABLE archive_runs (
    due_at       timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    events       bigint NOT NULL,
    tasks        bigint NOT NULL
);
CREATE INDEX archive_runs_due ON archive_runs (due_at DESC);
