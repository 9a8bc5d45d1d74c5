-- Durable jobs: scheduled in the transaction of the change that needs them, claimed by one worker
-- at a time (FOR UPDATE SKIP LOCKED), run in the transaction that marks them done. Not
-- tenant-policed: the worker claims across tenants and then scopes its transaction to the job's.
CREATE TABLE jobs (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL,
    -- What makes a job the same job: scheduling it twice is a no-op.
    key          text        NOT NULL,
    tenant_id    uuid,
    payload      jsonb       NOT NULL DEFAULT 'null',
    run_at       timestamptz NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    -- Set when the job failed `jobs.max_attempts` times; it is kept for an operator.
    given_up_at  timestamptz,
    CONSTRAINT jobs_kind_key UNIQUE (kind, key)
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE done_at IS NULL AND given_up_at IS NULL;

-- Idempotency keys (AIP-155 `request_id`, the `Idempotency-Key` header): the first request's hash
-- and answer, stored in the transaction of its effect, so a retry gets the same answer and no
-- second effect. `scope` is the tenant or, for tenant-less creates, the principal.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,
    method       text        NOT NULL,
    key          text        NOT NULL,
    tenant_id    uuid,
    request_hash bytea       NOT NULL,
    -- NULL while the first request is still at work (claimed in a transaction of its own).
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, method, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
-- A tenant's keys (and its stored answers) are visible only in that tenant's transactions;
-- principal-scoped keys carry no tenant and are checked by scope in code.
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id IS NULL OR tenant_id = current_tenant_id())
    WITH CHECK (tenant_id IS NULL OR tenant_id = current_tenant_id());
