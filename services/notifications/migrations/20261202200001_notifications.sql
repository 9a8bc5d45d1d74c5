-- The in-app inbox, each user's head of it (the sequence the live stream resumes by), preferences
-- per user and per tenant, and the digest queue. Every table belongs to a tenant (row-level
-- security). Emails themselves are durable kernel jobs, not rows here.

CREATE TABLE inbox_heads (
    tenant_id     uuid   NOT NULL,
    user_id       uuid   NOT NULL,
    -- The last sequence handed to one of the user's notifications. Taken with
    -- `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`, so the row lock orders the commits of one
    -- user's notifications by sequence and the watch stream can never skip one.
    last_sequence bigint NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
SELECT enable_tenant_rls('inbox_heads');

CREATE TABLE notifications (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    sequence        bigint      NOT NULL,
    category        text        NOT NULL
        CHECK (category IN ('security', 'membership', 'work', 'billing', 'marketplace')),
    event_type      text        NOT NULL,
    -- The event it reports: one notification per (event, recipient), whatever redelivers it.
    source_event_id uuid        NOT NULL,
    title           text        NOT NULL,
    body            text        NOT NULL,
    link            text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    read_at         timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT notifications_sequence_key UNIQUE (tenant_id, user_id, sequence),
    CONSTRAINT notifications_source_key UNIQUE (tenant_id, user_id, source_event_id)
);
SELECT enable_tenant_rls('notifications');
CREATE INDEX notifications_unread ON notifications (tenant_id, user_id) WHERE read_at IS NULL;

-- A user's own choice for one category.
CREATE TABLE user_preferences (
    tenant_id     uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    category      text        NOT NULL
        CHECK (category IN ('security', 'membership', 'work', 'billing', 'marketplace')),
    email         boolean     NOT NULL,
    in_app        boolean     NOT NULL,
    email_cadence text        NOT NULL CHECK (email_cadence IN ('immediate', 'daily_digest')),
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, category),
    -- Security messages cannot be turned off, whatever writes the row.
    CONSTRAINT user_preferences_security_on
        CHECK (category <> 'security' OR (email AND in_app AND email_cadence = 'immediate'))
);
SELECT enable_tenant_rls('user_preferences');

-- The tenant's default for one category.
CREATE TABLE tenant_preferences (
    tenant_id     uuid        NOT NULL,
    category      text        NOT NULL
        CHECK (category IN ('security', 'membership', 'work', 'billing', 'marketplace')),
    email         boolean     NOT NULL,
    in_app        boolean     NOT NULL,
    email_cadence text        NOT NULL CHECK (email_cadence IN ('immediate', 'daily_digest')),
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, category),
    CONSTRAINT tenant_preferences_security_on
        CHECK (category <> 'security' OR (email AND in_app AND email_cadence = 'immediate'))
);
SELECT enable_tenant_rls('tenant_preferences');

-- Notifications waiting for a user's daily digest email of their category; the digest job
-- renders them and deletes them in its transaction.
CREATE TABLE digest_entries (
    tenant_id       uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    category        text        NOT NULL
        CHECK (category IN ('security', 'membership', 'work', 'billing', 'marketplace')),
    notification_id uuid        NOT NULL,
    title           text        NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, notification_id)
);
SELECT enable_tenant_rls('digest_entries');

-- What other contexts' later events leave out, projected from their earlier ones: a task's title,
-- creator and assignee (delivery's approval events name only the task), an order's buyer and
-- seller (fulfilment and disputes name only the order).
CREATE TABLE subjects (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('task', 'order')),
    title       text NOT NULL DEFAULT '',
    creator_id  uuid,
    assignee_id uuid,
    buyer_id    uuid,
    seller_id   uuid,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('subjects');

-- Each tenant's name and owner (its creator), projected from tenancy's events: what concerns the
-- tenant as a whole (billing, its approval) goes to the owner, and messages name the tenant.
CREATE TABLE tenants (
    tenant_id      uuid NOT NULL,
    name           text NOT NULL,
    owner_id       uuid,
    -- The tenant's default language (a BCP 47 tag), '' when it chose none.
    default_locale text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id)
);
SELECT enable_tenant_rls('tenants');
