-- Billing: the catalogue (global), subscriptions, usage, invoices (per tenant), webhooks.
--
-- `meters`, `plans`, `prices`, `invoice_counters` and `webhook_events` are global tables: the
-- catalogue is the platform's, invoice numbers are one sequence per year across tenants, and a
-- provider's event ids are the provider's. Everything that belongs to a tenant is led by
-- `tenant_id` under the kernel's row-level security convention.

CREATE TABLE meters (
    id           text        PRIMARY KEY,
    display_name text        NOT NULL,
    unit         text        NOT NULL,
    aggregation  text        NOT NULL CHECK (aggregation IN ('sum', 'count', 'max')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plans (
    id           text        PRIMARY KEY,
    display_name text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    -- Feature -> granted amount (-1 unlimited).
    limits       jsonb       NOT NULL DEFAULT '{}',
    modules      text[]      NOT NULL DEFAULT '{}',
    -- Listing order: config order for seeded plans, then plans created later.
    position     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prices (
    id             uuid        PRIMARY KEY,
    plan_id        text        NOT NULL REFERENCES plans (id),
    -- What identifies the price in its plan (`flat:EUR:Month`, `usage:ai.tokens:EUR:Month`).
    key            text        NOT NULL,
    position       integer     NOT NULL,
    currency       text        NOT NULL,
    unit_amount    bigint      NOT NULL CHECK (unit_amount >= 0),
    billing_interval text      NOT NULL CHECK (billing_interval IN ('month', 'year')),
    meter_id       text        REFERENCES meters (id),
    included_units bigint      NOT NULL DEFAULT 0 CHECK (included_units >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT prices_plan_key UNIQUE (plan_id, key)
);

-- Per-tenant facts billing keeps: the entitlements version and the members (seats).
CREATE TABLE billing_tenants (
    tenant_id            uuid        NOT NULL PRIMARY KEY,
    entitlements_version bigint      NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now()
);
SELECT enable_tenant_rls('billing_tenants');

CREATE TABLE tenant_members (
    tenant_id uuid NOT NULL,
    user_id   uuid NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
SELECT enable_tenant_rls('tenant_members');

CREATE TABLE subscriptions (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL,
    plan_id              text        NOT NULL REFERENCES plans (id),
    price_id             uuid        NOT NULL REFERENCES prices (id),
    state                text        NOT NULL
        CHECK (state IN ('trialing', 'active', 'past_due', 'canceled')),
    billing_interval     text        NOT NULL CHECK (billing_interval IN ('month', 'year')),
    -- Period n starts n intervals after the anchor (clamped to month ends).
    anchor               timestamptz NOT NULL,
    period_index         integer     NOT NULL DEFAULT 0,
    current_period_start timestamptz NOT NULL,
    current_period_end   timestamptz NOT NULL,
    -- Since when `price_id` is the price: the flat fee of the period is charged per price for the
    -- time it was in force (a mid-period change leaves a pending line for the old price).
    price_since          timestamptz NOT NULL,
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    canceled_at          timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('subscriptions');
-- One live subscription per tenant, whatever races the application's own check.
CREATE UNIQUE INDEX subscriptions_one_live ON subscriptions (tenant_id) WHERE state <> 'canceled';
CREATE INDEX subscriptions_newest ON subscriptions (tenant_id, created_at DESC, id DESC);

CREATE TABLE usage_records (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    meter_id        text        NOT NULL REFERENCES meters (id),
    quantity        bigint      NOT NULL CHECK (quantity >= 0),
    occur_time      timestamptz NOT NULL,
    idempotency_key text        NOT NULL,
    -- The invoice that billed it; NULL until a period close (or a late-usage line) takes it.
    invoice_id      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    -- Durable deduplication against every stored record.
    CONSTRAINT usage_records_idempotency UNIQUE (tenant_id, meter_id, idempotency_key)
);
SELECT enable_tenant_rls('usage_records');
CREATE INDEX usage_records_by_time ON usage_records (tenant_id, meter_id, occur_time);
CREATE INDEX usage_records_unbilled ON usage_records (tenant_id, occur_time) WHERE invoice_id IS NULL;

CREATE TABLE invoices (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    subscription_id uuid        NOT NULL,
    number          text        UNIQUE,
    state           text        NOT NULL
        CHECK (state IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency        text        NOT NULL,
    subtotal        bigint      NOT NULL,
    tax             bigint      NOT NULL,
    total           bigint      NOT NULL,
    amount_paid     bigint      NOT NULL DEFAULT 0,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    issue_time      timestamptz,
    due_time        timestamptz,
    paid_time       timestamptz,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    -- One invoice per subscription period, whatever races (two period-close workers).
    CONSTRAINT invoices_one_per_period UNIQUE (tenant_id, subscription_id, period_start),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id)
);
SELECT enable_tenant_rls('invoices');
CREATE INDEX invoices_newest ON invoices (tenant_id, created_at DESC, id DESC);

CREATE TABLE invoice_lines (
    tenant_id    uuid        NOT NULL,
    invoice_id   uuid        NOT NULL,
    position     integer     NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('flat', 'usage', 'late_usage', 'proration')),
    description  text        NOT NULL,
    price_id     uuid,
    meter_id     text        NOT NULL DEFAULT '',
    quantity     bigint      NOT NULL,
    unit_amount  bigint      NOT NULL,
    amount       bigint      NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, invoice_id, position),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
SELECT enable_tenant_rls('invoice_lines');

-- Lines waiting for the next invoice of a subscription (prorations of a mid-period change).
CREATE TABLE pending_lines (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    subscription_id uuid        NOT NULL,
    description     text        NOT NULL,
    price_id        uuid,
    quantity        bigint      NOT NULL,
    unit_amount     bigint      NOT NULL,
    amount          bigint      NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    invoice_id      uuid,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('pending_lines');

-- Gap-free invoice numbers: one counter row per year, locked by the finalizing transaction, so a
-- rolled-back finalization gives its number back.
CREATE TABLE invoice_counters (
    year integer PRIMARY KEY,
    last bigint  NOT NULL
);

-- Provider events already processed: a redelivered webhook finds its row and has no effect.
CREATE TABLE webhook_events (
    provider    text        NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (provider, event_id)
);
