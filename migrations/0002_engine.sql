-- The durable event/task engine: the transactional outbox (domain_events) and the task queue.
-- Statuses follow campus_core::engine::lifecycle.
--
-- These are the hot tables: every index here is paid on every insert, claim and completion,
-- so there are only the indexes the engine's own queries use. Indexes for admin filters belong
-- with the queries that need them.

CREATE TABLE domain_events (
    id                uuid PRIMARY KEY,              -- UUIDv7: time-ordered
    event_type        text NOT NULL,
    aggregate_type    text NOT NULL,
    aggregate_id      uuid NOT NULL,
    institution_id    uuid,
    payload           jsonb NOT NULL,
    correlation_id    text,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'dispatched', 'retrying', 'dead')),
    attempts          integer NOT NULL DEFAULT 0,
    errors            jsonb NOT NULL DEFAULT '[]',   -- [{at, attempt, message}]
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    occurred_at       timestamptz NOT NULL DEFAULT now(),
    dispatched_at     timestamptz,
    reprocessed_from  uuid REFERENCES domain_events (id)
) WITH (fillfactor = 80);

-- The dispatcher's claim query: due events in order.
CREATE INDEX domain_events_due ON domain_events (next_attempt_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX domain_events_reprocessed_from ON domain_events (reprocessed_from) WHERE reprocessed_from IS NOT NULL;

CREATE TABLE tasks (
    id                uuid PRIMARY KEY,
    task_type         text NOT NULL,
    handler           text,
    payload           jsonb NOT NULL,
    institution_id    uuid,
    event_id          uuid REFERENCES domain_events (id),
    correlation_id    text,
    reprocessed_from  uuid REFERENCES tasks (id),
    lineage_id        uuid NOT NULL,                 -- first task of the reprocessing lineage
    idempotency_key   text,                          -- unique when set (index below)
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'running', 'succeeded', 'retrying', 'dead', 'cancelled')),
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_at            timestamptz NOT NULL DEFAULT now(),
    locked_by         text,
    locked_until      timestamptz,
    errors            jsonb NOT NULL DEFAULT '[]',   -- [{at, attempt, message}]
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    duration_ms       double precision
) WITH (fillfactor = 80);

-- The workers' claim query: due tasks in order.
CREATE INDEX tasks_due ON tasks (run_at, id) WHERE status IN ('pending', 'retrying');
-- The rescuer: running tasks by lease end.
CREATE INDEX tasks_running_lease ON tasks (locked_until) WHERE status = 'running';
-- Partial where NULL is common: a row without a key or an origin event costs these indexes
-- nothing, on insert and on every (non-HOT) update.
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_event ON tasks (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX tasks_reprocessed_from ON tasks (reprocessed_from) WHERE reprocessed_from IS NOT NULL;

-- Queue tables churn: every claim and completion leaves a dead row version, and dead entries
-- in the partial "due" indexes slow the claim queries until vacuum removes them. Vacuum them
-- early and without throttling.
ALTER TABLE domain_events SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                               autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE tasks SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                       autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
