-- The module catalogue (global, platform data) and each tenant's module settings and flag overrides.

CREATE TABLE modules (
    name            text    PRIMARY KEY,
    display_name    text    NOT NULL,
    description     text    NOT NULL,
    default_enabled boolean NOT NULL,
    position        integer NOT NULL
);
INSERT INTO modules (name, display_name, description, default_enabled, position) VALUES
    ('delivery',    'Delivery',    'Projects, tasks, comments and approvals.',            true,  1),
    ('billing',     'Billing',     'Plans, subscriptions, usage meters and invoices.',     true,  2),
    ('marketplace', 'Marketplace', 'Listings, offers, orders and disputes.',              false, 3),
    ('ai',          'AI',          'Metered, permission-aware access to language models.', false, 4);

-- One row per (tenant, catalogue module), written when the tenant is created, so a later change of
-- a module's default does not silently change existing tenants.
CREATE TABLE tenant_modules (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    module     text        NOT NULL REFERENCES modules (name),
    enabled    boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, module)
);
SELECT enable_tenant_rls('tenant_modules');

CREATE TABLE feature_flags (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    name       text        NOT NULL,
    enabled    boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
SELECT enable_tenant_rls('feature_flags');
