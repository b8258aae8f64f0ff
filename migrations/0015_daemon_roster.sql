-- The roster of running daemons (issue 15): each daemon upserts its row every few seconds
-- and deletes it when it stops; `campus status` and the admin overview read it. `heard_at`
-- is written with the database's clock, so daemons on several hosts compare nothing of
-- their own. A row not heard from for a day (a daemon killed without leaving) is deleted by
-- the next heartbeat of any daemon. A handful of rows: no index beyond the key.
CREATE TABLE daemons (
    worker_id text PRIMARY KEY,
    version text NOT NULL,
    started_at timestamptz NOT NULL,
    concurrency integer NOT NULL,
    running integer NOT NULL,
    leader boolean NOT NULL,
    listening boolean NOT NULL,
    heard_at timestamptz NOT NULL DEFAULT now()
);
