-- Webhooks (issue 14): an institution's subscriptions to its domain events, and the log of
-- every delivery attempt. Deliveries themselves are tasks (`deliver_webhook`).
--
-- Secrets are sealed with the server's key (like reset tokens): the database alone cannot
-- sign. After a rotation the previous secret keeps signing until `previous_until`.
CREATE TABLE webhook_subscriptions (
    id               uuid PRIMARY KEY,
    institution_id   uuid NOT NULL REFERENCES institutions (id),
    url              text NOT NULL,
    event_types      text[] NOT NULL,
    description      text NOT NULL DEFAULT '',
    enabled          boolean NOT NULL,
    disabled_reason  text,
    secret_sealed    text NOT NULL,
    previous_sealed  text,
    previous_until   timestamptz,
    -- Its first failed attempt after its last success: failing for
    -- CAMPUS_WEBHOOK_DISABLE_AFTER disables it.
    failing_since    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (institution_id, url)
);

-- One row per attempt. No foreign key to the subscription: the log outlives a deleted
-- subscription (and is never updated).
CREATE TABLE webhook_attempts (
    id                uuid PRIMARY KEY,
    task_id           uuid NOT NULL,
    subscription_id   uuid NOT NULL,
    institution_id    uuid NOT NULL,
    message_id        text NOT NULL,
    event_type        text NOT NULL,
    attempt           integer NOT NULL,
    status            integer,
    duration_ms       double precision NOT NULL,
    response_excerpt  text NOT NULL DEFAULT '',
    error             text,
    at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_subscription ON webhook_attempts (subscription_id, id DESC);
CREATE INDEX webhook_attempts_task ON webhook_attempts (task_id);
