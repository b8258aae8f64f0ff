-- Operator controls per task type, shared by every daemon of the database: a paused type is
-- not claimed (the claim reads this table in the same statement, so a pause holds from the
-- next claim on, with no extra round trip). A row exists only for types an operator touched.
CREATE TABLE task_type_controls (
    task_type   text PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- What the claim reads. Without an index the engine's pool (enable_seqscan = off) prices the
-- scan of this tiny table so high that PostgreSQL JIT-compiles every claim (~250 ms each).
CREATE INDEX task_type_controls_paused ON task_type_controls (task_type) WHERE paused;
