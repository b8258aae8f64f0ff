-- The admin lists' correlation-id filter through indexes (issue 20): at 1 000 000 rows it
-- read the whole live table.
--
-- On the live tables the correlation index holds *settled* rows only (finished tasks,
-- dispatched or dead events). A queued row then costs it nothing but the predicate check when
-- it is inserted and claimed; it enters it once, when it settles. The lists read the rows
-- still in the queue through the queue's own partial indexes (`tasks_claim`,
-- `tasks_running_lease`, `domain_events_due`; see `pg/admin/mod.rs`, `source`). Copies are
-- rare: the request id of the operator who made them gets a plain partial index.
--
-- Text search in the payload (`q`) has no index: a trigram index of the settled rows made it
-- fast but cost the drain about a third, a word index about a fifth (docs/PERFORMANCE.md).

CREATE INDEX tasks_settled_correlation ON tasks (correlation_id)
    WHERE status IN ('succeeded', 'dead', 'cancelled');
CREATE INDEX tasks_reprocess_request ON tasks (reprocess_request_id)
    WHERE reprocess_request_id IS NOT NULL;

CREATE INDEX domain_events_settled_correlation ON domain_events (correlation_id)
    WHERE status IN ('dispatched', 'dead');
CREATE INDEX domain_events_reprocess_request ON domain_events (reprocess_request_id)
    WHERE reprocess_request_id IS NOT NULL;

-- One index of waiting tasks instead of two. `tasks_claim` (0017) serves the claims, the due
-- counts and the gauges; `tasks_due` (0002) only served the counts, yet every enqueue paid it.
-- The correlation indexes above are paid for with it (docs/PERFORMANCE.md).
DROP INDEX tasks_due;
