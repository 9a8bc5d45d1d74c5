-- The plan each tenant is on, from billing's `billing.entitlements.changed` (the newest version
-- wins): it picks the commission rule. A tenant billing never mentioned is on the default plan.
CREATE TABLE tenant_plans (
    tenant_id  uuid        NOT NULL PRIMARY KEY,
    plan_id    text        NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT enable_tenant_rls('tenant_plans');
