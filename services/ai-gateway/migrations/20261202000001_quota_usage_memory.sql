-- The ai-gateway's tables: token quotas and their in-flight reservations, the usage log, and
-- tenant memories. Every table belongs to a tenant and is under the kernel's row-level security.

-- One row per tenant: the current period's limit and counters. Reservations and commits are
-- conditional UPDATEs of this row, so concurrent calls serialise on it and `used + reserved`
-- never passes `limit_tokens`.
CREATE TABLE quotas (
    tenant_id            uuid        NOT NULL PRIMARY KEY,
    -- -1: unlimited.
    limit_tokens         bigint      NOT NULL,
    period_start         timestamptz NOT NULL,
    period_end           timestamptz NOT NULL,
    used_tokens          bigint      NOT NULL DEFAULT 0 CHECK (used_tokens >= 0),
    reserved_tokens      bigint      NOT NULL DEFAULT 0 CHECK (reserved_tokens >= 0),
    -- The `version` of the last billing.entitlements.changed applied (0: billing has not told
    -- us; the configured default applies).
    entitlements_version bigint      NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end > period_start)
);
SELECT enable_tenant_rls('quotas');

-- Tokens held by a call in flight, keyed by its completion id. Removed when the call is charged
-- or rolled back, or by the sweeper once older than the TTL (a crashed call).
CREATE TABLE reservations (
    tenant_id     uuid        NOT NULL,
    completion_id uuid        NOT NULL,
    tokens        bigint      NOT NULL CHECK (tokens >= 0),
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, completion_id)
);
SELECT enable_tenant_rls('reservations');

-- One row per AI call (its id is the completion id), newest first in ListUsage.
CREATE TABLE usage_records (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    principal_id      text        NOT NULL,
    model             text        NOT NULL,
    provider          text        NOT NULL,
    prompt_tokens     bigint      NOT NULL,
    completion_tokens bigint      NOT NULL,
    cost_micros       bigint      NOT NULL,
    currency          text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('succeeded', 'failed', 'blocked')),
    counted_by        text        NOT NULL CHECK (counted_by IN ('provider', 'tokenizer')),
    request_id        text        NOT NULL,
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('usage_records');
CREATE INDEX usage_records_newest ON usage_records (tenant_id, created_at DESC, id DESC);

-- Memories. `terms` and `ngrams` are computed by the service (words; CJK/Hangul bigrams and
-- Arabic trigrams) and indexed together with the `simple` configuration.
CREATE TABLE memories (
    tenant_id           uuid        NOT NULL,
    id                  text        NOT NULL,
    namespace           text        NOT NULL DEFAULT '',
    content             text        NOT NULL,
    metadata            jsonb       NOT NULL DEFAULT '{}',
    required_permission text        NOT NULL DEFAULT '',
    terms               text        NOT NULL,
    ngrams              text        NOT NULL,
    search              tsvector    GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', terms), 'A') || setweight(to_tsvector('simple', ngrams), 'B')
    ) STORED,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('memories');
CREATE INDEX memories_search ON memories USING gin (search);
CREATE INDEX memories_by_permission ON memories (tenant_id, required_permission);
