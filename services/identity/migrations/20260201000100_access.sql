-- What identity knows of tenancy (kept from its events), roles, role bindings and API keys.

-- The tenant registry as tenancy last told it. Global: switching tenants reads it before there
-- is a tenant scope. Holds state only, no tenant data.
CREATE TABLE tenants (
    id         uuid        PRIMARY KEY,
    state      text        NOT NULL CHECK (state IN ('pending_approval', 'active', 'suspended', 'deleted')),
    -- The tenant aggregate's version of the last applied event: older events are ignored.
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A member's role in a tenant (a built-in role name or a custom role id). Removal keeps the row
-- as a tombstone with its version, so a late, older `member.added` cannot resurrect it.
CREATE TABLE role_bindings (
    tenant_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    role       text        NOT NULL,
    removed    boolean     NOT NULL DEFAULT false,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
SELECT enable_tenant_rls('role_bindings');

-- Custom roles; the built-in ones live in code.
CREATE TABLE roles (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    permissions text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT roles_name_key UNIQUE (tenant_id, name)
);
SELECT enable_tenant_rls('roles');

CREATE TABLE api_keys (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    secret_hash  bytea       NOT NULL,
    scopes       text[]      NOT NULL,
    expires_at   timestamptz,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    revoked_by   text,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('api_keys');
CREATE INDEX api_keys_live ON api_keys (tenant_id, id DESC) WHERE revoked_at IS NULL;

-- Which tenant holds a key. The exchange arrives with nothing but a secret; this global map,
-- keyed by the id embedded in the secret, tells it which tenant scope to open. It holds no
-- secret and no tenant data: the key itself (and its hash) stays behind the tenant's policy.
CREATE TABLE api_key_directory (
    key_id       uuid PRIMARY KEY,
    owner_tenant uuid NOT NULL
);
