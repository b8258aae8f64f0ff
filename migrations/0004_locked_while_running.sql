-- `locked_by` is set exactly while a task is running. The engine's fenced statements
-- (completion, heartbeat) match on `locked_by` alone and rely on this; writing
-- `status = 'running'` there instead lets the planner pick the `tasks_running_lease` index
-- and scan every running task for each row of a batch when the statistics are stale.
ALTER TABLE tasks ADD CONSTRAINT tasks_locked_while_running
    CHECK ((status = 'running') = (locked_by IS NOT NULL));
