-- no-transaction
-- The tasks of one institution, newest first (see 0006).
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_institution ON tasks (institution_id, id);
