-- Outbound webhooks: a tenant's endpoints, the messages its events became, one delivery per
-- (message, endpoint), and the log of every attempt. Attempts themselves are durable kernel jobs
-- (`notifications.webhook.attempt`). Every table belongs to a tenant (row-level security).

CREATE TABLE webhook_endpoints (
    tenant_id                  uuid        NOT NULL,
    id                         uuid        NOT NULL,
    kind                       text        NOT NULL CHECK (kind IN ('webhook', 'slack', 'telegram')),
    -- For Telegram: empty (the bot API's base comes from config).
    url                        text        NOT NULL,
    description                text        NOT NULL DEFAULT '',
    -- Empty: every event. Entries are exact types or `<prefix>.*`.
    event_types                text[]      NOT NULL DEFAULT '{}',
    -- Signing secrets (`whsec_...`) of generic endpoints; HMAC needs them in the clear.
    secret                     text,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    telegram_bot_token         text,
    telegram_chat_id           text,
    enabled                    boolean     NOT NULL DEFAULT true,
    disabled_reason            text        NOT NULL DEFAULT '',
    -- Failed attempts since the last success, and when the first of them happened.
    consecutive_failures       integer     NOT NULL DEFAULT 0,
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('webhook_endpoints');

-- What one event says, once per tenant, whatever the number of endpoints.
CREATE TABLE webhook_messages (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    payload     jsonb       NOT NULL,
    summary     text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT webhook_messages_event_key UNIQUE (tenant_id, event_id)
);
SELECT enable_tenant_rls('webhook_messages');

-- One message to one endpoint. `run` counts replays: an attempt job belongs to one run, so a
-- job of a superseded run does nothing.
CREATE TABLE webhook_deliveries (
    tenant_id       uuid        NOT NULL,
    message_id      uuid        NOT NULL,
    endpoint_id     uuid        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    run             integer     NOT NULL DEFAULT 1,
    -- Failed attempts in the current run (the retry schedule's position).
    run_failures    integer     NOT NULL DEFAULT 0,
    -- Attempts in all runs.
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, message_id, endpoint_id),
    FOREIGN KEY (tenant_id, message_id) REFERENCES webhook_messages (tenant_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_rls('webhook_deliveries');
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (tenant_id, endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    message_id       uuid        NOT NULL,
    endpoint_id      uuid        NOT NULL,
    attempt_number   integer     NOT NULL,
    trigger          text        NOT NULL CHECK (trigger IN ('scheduled', 'replay')),
    attempted_at     timestamptz NOT NULL,
    succeeded        boolean     NOT NULL,
    status_code      integer,
    latency_ms       bigint      NOT NULL,
    response_excerpt text        NOT NULL,
    error            text        NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, message_id, endpoint_id)
        REFERENCES webhook_deliveries (tenant_id, message_id, endpoint_id) ON DELETE CASCADE
);
SELECT enable_tenant_rls('webhook_attempts');
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (tenant_id, endpoint_id, attempted_at DESC);
