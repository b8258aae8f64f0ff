-- Text search in payloads (the admin lists' `q`, issue 20) through a trigram index kept
-- beside the live tables instead of on them: an index on `tasks` itself cost the drain a fifth
-- to a third (docs/PERFORMANCE.md), since every row version of a task enters it. Payloads
-- never change, so each row's text is indexed once, by the maintenance leader, when the
-- daemon has room (`pg/search.rs`).
--
-- Which rows are indexed is exact, not a matter of time: each row records the transaction
-- that inserted it (`inserted_txid`, the 64-bit id of `pg_current_xact_id()`), and
-- `payload_index_marks.indexed_below` says that every row inserted by a transaction below it
-- has its text in `*_texts` (transactions below a snapshot's xmin have all ended, so none of
-- their rows can appear later). A search reads the texts' index, and the rows at or above
-- the mark by the BRIN index of `inserted_txid` (small, and cheap to keep: it does not enter
-- an entry per row version). Rows that reach an archive table not indexed yet are indexed as
-- they arrive (the triggers at the end, whoever moves them), so the archive tables are wholly
-- covered by the texts.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Without a default first: existing rows keep NULL (no table rewrite) and are indexed below.
ALTER TABLE tasks ADD COLUMN inserted_txid bigint;
ALTER TABLE tasks ALTER COLUMN inserted_txid SET DEFAULT pg_current_xact_id()::text::bigint;
ALTER TABLE tasks_processed ADD COLUMN inserted_txid bigint;
ALTER TABLE domain_events ADD COLUMN inserted_txid bigint;
ALTER TABLE domain_events ALTER COLUMN inserted_txid SET DEFAULT pg_current_xact_id()::text::bigint;
ALTER TABLE domain_events_processed ADD COLUMN inserted_txid bigint;

CREATE INDEX tasks_inserted_txid ON tasks USING brin (inserted_txid);
CREATE INDEX domain_events_inserted_txid ON domain_events USING brin (inserted_txid);

-- The indexed texts: `payload::text` of live and archived rows, by the row's id.
CREATE TABLE task_texts (id uuid PRIMARY KEY, body text NOT NULL);
CREATE TABLE event_texts (id uuid PRIMARY KEY, body text NOT NULL);

-- How far indexing has gone, per live table. While a range of transactions is being
-- indexed in batches, `step_below` is its end and `after_id` the last id done in it.
CREATE TABLE payload_index_marks (
    source        text PRIMARY KEY CHECK (source IN ('tasks', 'domain_events')),
    indexed_below bigint NOT NULL,
    step_below    bigint,
    after_id      uuid
);

-- The rows there are now (this migration holds the tables' locks: nobody writes meanwhile).
INSERT INTO task_texts (id, body)
    SELECT id, payload::text FROM tasks UNION ALL SELECT id, payload::text FROM tasks_processed;
INSERT INTO event_texts (id, body)
    SELECT id, payload::text FROM domain_events
    UNION ALL SELECT id, payload::text FROM domain_events_processed;
INSERT INTO payload_index_marks (source, indexed_below)
    SELECT s, pg_snapshot_xmin(pg_current_snapshot())::text::bigint
    FROM unnest(ARRAY['tasks', 'domain_events']) AS s;

-- Built after the texts are in (faster than entering them one by one).
CREATE INDEX task_texts_body ON task_texts USING gin (body gin_trgm_ops);
CREATE INDEX event_texts_body ON event_texts USING gin (body gin_trgm_ops);

-- Rows inserted into an archive table (the archive's move) that are not indexed yet get
-- their text at once. In id order, as the indexer inserts: two transactions entering the same
-- ids take them in the same order, so they wait for each other instead of deadlocking.
CREATE FUNCTION task_texts_of_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_texts (id, body)
    SELECT id, payload::text FROM arrived
    WHERE inserted_txid >= (SELECT indexed_below FROM payload_index_marks WHERE source = 'tasks')
    ORDER BY id
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_processed_texts AFTER INSERT ON tasks_processed
    REFERENCING NEW TABLE AS arrived FOR EACH STATEMENT EXECUTE FUNCTION task_texts_of_archived();

CREATE FUNCTION event_texts_of_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_texts (id, body)
    SELECT id, payload::text FROM arrived
    WHERE inserted_txid >= (SELECT indexed_below FROM payload_index_marks WHERE source = 'domain_events')
    ORDER BY id
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER domain_events_processed_texts AFTER INSERT ON domain_events_processed
    REFERENCING NEW TABLE AS arrived FOR EACH STATEMENT EXECUTE FUNCTION event_texts_of_archived();
