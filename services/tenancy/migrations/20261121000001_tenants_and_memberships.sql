-- Tenants, memberships and invitations.
--
-- `tenants` is the platform's tenant registry: a global table (its key is the tenant itself, it has
-- no `tenant_id` column and no tenant policy). Handlers reach a tenant row only by an id they have
-- authorised against the caller's token. Everything that belongs to a tenant lives in tables led by
-- `tenant_id` under the kernel's row-level security convention.

CREATE TABLE tenants (
    id                   uuid        PRIMARY KEY,
    name                 text        NOT NULL,
    slug                 text        NOT NULL CONSTRAINT tenants_slug_key UNIQUE,
    state                text        NOT NULL
        CHECK (state IN ('pending_approval', 'active', 'suspended', 'deleted')),
    plan                 text        NOT NULL,
    created_by           uuid        NOT NULL,
    suspended_reason     text        NOT NULL DEFAULT '',
    -- Version of the tenant aggregate: bumped by every lifecycle change (tenancy.tenant.* events).
    version              bigint      NOT NULL DEFAULT 1,
    -- Sequence of membership changes in the tenant (tenancy.member.* events). Per tenant rather than
    -- per membership so it keeps increasing when a member is removed and later re-added.
    members_version      bigint      NOT NULL DEFAULT 0,
    -- Bumped by any change to what GetEntitlements returns (state, plan, modules, flags).
    entitlements_version bigint      NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_created ON tenants (created_at, id);
CREATE INDEX tenants_state ON tenants (state, created_at, id);

CREATE TABLE memberships (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    user_id    uuid        NOT NULL,
    -- A built-in role name or the id of a custom role (identity owns the role catalogue).
    role       text        NOT NULL,
    email      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
SELECT enable_tenant_rls('memberships');
-- "My tenants": a user-scoped transaction (user_tx) may read the user's own memberships across
-- tenants, and nothing else. Read-only: writes still need the tenant.
CREATE POLICY own_memberships ON memberships FOR SELECT USING (user_id = current_user_id());
CREATE INDEX memberships_by_join_time ON memberships (tenant_id, created_at, user_id);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE invitations (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    id          uuid        NOT NULL,
    email       text        NOT NULL,
    role        text        NOT NULL,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash  bytea       NOT NULL,
    -- The inviting principal (`sub` of its token: a user id, or an API key id).
    invited_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT invitations_token_hash_key UNIQUE (tenant_id, token_hash)
);
SELECT enable_tenant_rls('invitations');
