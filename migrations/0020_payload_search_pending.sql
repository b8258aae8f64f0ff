-- The rows whose payload text is still to be indexed are listed by id as they are inserted
-- (`task_texts_pending`, `event_texts_pending`, filled by a statement trigger in the inserting
-- transaction), instead of found through a mark on the inserting transaction (0019).
--
-- 0019 found them through the BRIN index of `inserted_txid`. Its ranges widen as soon as
-- tasks are claimed and completed (each new row version of an old row lands on a new page),
-- so a pass read most of the table to index a few rows: 0.5 s a pass at a few thousand rows,
-- run whenever the daemon was nearly idle, which took the cores from the API
-- (docs/PERFORMANCE.md). A pending id costs an insert one narrow row; a pass reads exactly the
-- rows it indexes, and moves each from the pending list to the texts in one transaction, so a
-- live row is always in exactly one of them.
CREATE TABLE task_texts_pending (id uuid PRIMARY KEY);
CREATE TABLE event_texts_pending (id uuid PRIMARY KEY);
-- Queues: rows come and go all day.
ALTER TABLE task_texts_pending SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
ALTER TABLE event_texts_pending SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);

-- The live rows not indexed yet (this migration holds the tables' locks: nobody writes
-- meanwhile).
INSERT INTO task_texts_pending (id)
    SELECT id FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM task_texts x WHERE x.id = t.id);
INSERT INTO event_texts_pending (id)
    SELECT id FROM domain_events e WHERE NOT EXISTS (SELECT 1 FROM event_texts x WHERE x.id = e.id);

CREATE FUNCTION task_texts_wanted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_texts_pending (id) SELECT id FROM inserted;
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_texts_pending AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION task_texts_wanted();

CREATE FUNCTION event_texts_wanted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_texts_pending (id) SELECT id FROM inserted;
    RETURN NULL;
END $$;
CREATE TRIGGER domain_events_texts_pending AFTER INSERT ON domain_events
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION event_texts_wanted();

-- Rows arriving in an archive table leave the pending list and get their text at once
-- (whoever moves them), so the archive tables are searched through the texts alone. The
-- pending ids are locked in id order first, as an indexer takes them (it skips locked ones):
-- an indexer holding one of them has committed its text before the archive goes on.
CREATE OR REPLACE FUNCTION task_texts_of_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_texts_pending WHERE id IN (
        SELECT p.id FROM task_texts_pending p WHERE p.id IN (SELECT id FROM arrived)
        ORDER BY p.id FOR UPDATE);
    INSERT INTO task_texts (id, body)
    SELECT id, payload::text FROM arrived ORDER BY id
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION event_texts_of_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_texts_pending WHERE id IN (
        SELECT p.id FROM event_texts_pending p WHERE p.id IN (SELECT id FROM arrived)
        ORDER BY p.id FOR UPDATE);
    INSERT INTO event_texts (id, body)
    SELECT id, payload::text FROM arrived ORDER BY id
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;

-- 0019's mark and what served it.
DROP TABLE payload_index_marks;
DROP INDEX tasks_inserted_txid;
DROP INDEX domain_events_inserted_txid;
ALTER TABLE tasks DROP COLUMN inserted_txid;
ALTER TABLE tasks_processed DROP COLUMN inserted_txid;
ALTER TABLE domain_events DROP COLUMN inserted_txid;
ALTER TABLE domain_events_processed DROP COLUMN inserted_txid;
