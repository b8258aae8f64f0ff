-- The admin screen: operator sessions, and indexes for what operators look for.

-- A browser session of an Adm or Academic user. The cookie carries a random token; only its
-- SHA-256 hash is stored. `csrf_token` is echoed in every state-changing form.
CREATE TABLE operator_sessions (
    token_hash  text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);

-- Operators hunt for the rare rows: failed attempts and dead letters. These partial indexes
-- hold only those rows, so the queue's rows (the vast majority, which never fail) cost them
-- nothing but the predicate check; status updates are not HOT anyway (tasks_due reads status).
-- Newest first: the admin lists walk them by id descending.
CREATE INDEX tasks_with_errors ON tasks (id) WHERE errors <> '[]'::jsonb;
CREATE INDEX tasks_finished_unsuccessfully ON tasks (id) WHERE status IN ('dead', 'cancelled');
CREATE INDEX domain_events_with_errors ON domain_events (id) WHERE errors <> '[]'::jsonb;
CREATE INDEX domain_events_dead ON domain_events (id) WHERE status = 'dead';
