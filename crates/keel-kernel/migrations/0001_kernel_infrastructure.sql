-- Kernel tables and helpers, created in every service's own schema (the connection's search_path)
-- before the service's migrations. Versions 1-999 are reserved for the kernel.

-- The tenant of the current transaction, set only through the kernel's tenant_tx helper
-- (`set_config('app.current_tenant', .., true)`, i.e. SET LOCAL). NULLIF because a GUC that was set
-- once in a session reads back as '' after its transaction ends, and ''::uuid would raise.
CREATE FUNCTION current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.current_tenant', true), '')::uuid $$;

-- The user of the current transaction, set only through the kernel's user_tx helper. For policies
-- that let a user see their own rows across tenants (e.g. "my memberships").
CREATE FUNCTION current_user_id() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.current_user', true), '')::uuid $$;

-- The migration convention for tenant-scoped tables: call this right after CREATE TABLE.
-- FORCE makes the policy bind the table owner too (the service role owns its tables), so a query
-- that forgets `WHERE tenant_id = ..` sees only the current tenant's rows, and none without one.
CREATE FUNCTION enable_tenant_rls(target regclass) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s USING (tenant_id = current_tenant_id()) '
        'WITH CHECK (tenant_id = current_tenant_id())', target);
END
$$;

-- Transactional outbox: rows are written in the same transaction as the change that caused them,
-- and published by the relay. Not tenant-policed: only the kernel's relay reads it, across tenants.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    event_type    text        NOT NULL,
    tenant_id     uuid,
    envelope      bytea       NOT NULL,
    trace_context jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Idempotent consumption: a handler's effect and its inbox row commit together, so a redelivered
-- event finds its row and has no second effect.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- Events a consumer gave up on after max deliveries; an operator lists and replays them.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    consumer    text        NOT NULL,
    event_id    uuid        NOT NULL,
    subject     text        NOT NULL,
    envelope    bytea       NOT NULL,
    error       text        NOT NULL,
    deliveries  integer     NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    UNIQUE (consumer, event_id)
);
