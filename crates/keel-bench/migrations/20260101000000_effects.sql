-- The consumer effect the latency benchmark measures: one row per event, tenant-scoped like any
-- real service table.
CREATE TABLE effects (
    tenant_id  uuid        NOT NULL,
    event_id   uuid        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
SELECT enable_tenant_rls('effects');
