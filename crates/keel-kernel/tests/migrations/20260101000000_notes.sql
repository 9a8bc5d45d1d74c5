-- A tenant-scoped table following the convention, for the kernel's own tests.
CREATE TABLE notes (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL,
    body      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('notes');
