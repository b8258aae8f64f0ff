-- Fair and prioritized claims (issue 23). A task's priority (0 interactive, 1 normal, 2 bulk)
-- and its turn, `claim_at`: its `run_at` plus its priority's lag (aging; see
-- `campus_core::engine::scheduling`). A retry keeps the offset between the two.
--
-- `now()` is not volatile, so neither column rewrites the table; waiting and running tasks
-- then get the default priority's turn (the default lag of 10 s).
ALTER TABLE tasks
    ADD COLUMN priority smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 2),
    ADD COLUMN claim_at timestamptz NOT NULL DEFAULT now();
UPDATE tasks SET claim_at = run_at + interval '10 seconds'
 WHERE status IN ('pending', 'retrying', 'running');
ALTER TABLE tasks_processed
    ADD COLUMN priority smallint NOT NULL DEFAULT 1,
    ADD COLUMN claim_at timestamptz NOT NULL DEFAULT now();

-- The claim: per institution (tasks of none are one group, under the nil uuid), by turn. Its
-- first column also lets the claim find the institutions with waiting tasks by skipping
-- from one to the next (a loose index scan). The expression must stay exactly the one the
-- claim writes.
CREATE INDEX tasks_claim ON tasks
    (COALESCE(institution_id, '00000000-0000-0000-0000-000000000000'::uuid), claim_at, id)
    WHERE status IN ('pending', 'retrying');

-- Tasks of routes kept in order (issue 19: the bus publishes one aggregate's events in their
-- order): tasks with the same `ordering_key` run one at a time, by their event's id. The
-- claim asks this index whether an earlier one still waits or runs.
ALTER TABLE tasks ADD COLUMN ordering_key text;
ALTER TABLE tasks_processed ADD COLUMN ordering_key text;
CREATE INDEX tasks_in_order ON tasks (ordering_key, event_id)
    WHERE ordering_key IS NOT NULL AND status IN ('pending', 'running', 'retrying');
