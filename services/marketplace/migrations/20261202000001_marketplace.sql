-- Listings, offers, orders and disputes: every table belongs to a tenant, is led by `tenant_id`
-- and policed by the kernel's row-level security. Times are the service clock's (bound by the
-- handlers), so tests on a test clock see consistent expiries and windows.

CREATE TABLE listings (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    seller_id          uuid        NOT NULL,
    title              text        NOT NULL,
    description        text        NOT NULL DEFAULT '',
    -- Minor units of `currency`.
    unit_price         bigint      NOT NULL CHECK (unit_price >= 0),
    currency           text        NOT NULL,
    -- Reserved by orders with one conditional UPDATE (`quantity_available >= n`), so it never
    -- goes below zero; the CHECK is the last line of defence.
    quantity_available bigint      NOT NULL CHECK (quantity_available >= 0),
    state              text        NOT NULL CHECK (state IN ('draft', 'published', 'archived')),
    -- Title, description and the CJK n-grams computed by the service (domain/search.rs).
    search_document    text        NOT NULL DEFAULT '',
    search             tsvector    GENERATED ALWAYS AS (to_tsvector('simple', search_document)) STORED,
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX listings_by_time ON listings (tenant_id, created_at, id);
CREATE INDEX listings_by_seller ON listings (tenant_id, seller_id, created_at, id);
CREATE INDEX listings_by_price ON listings (tenant_id, state, unit_price);
CREATE INDEX listings_search ON listings USING gin (search);
SELECT enable_tenant_rls('listings');

CREATE TABLE offers (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    listing_id         uuid        NOT NULL,
    buyer_id           uuid        NOT NULL,
    seller_id          uuid        NOT NULL,
    proposed_by        text        NOT NULL CHECK (proposed_by IN ('buyer', 'seller')),
    unit_price         bigint      NOT NULL CHECK (unit_price >= 0),
    quantity           bigint      NOT NULL CHECK (quantity >= 1),
    currency           text        NOT NULL,
    state              text        NOT NULL CHECK (state IN ('pending', 'accepted', 'rejected', 'expired')),
    expires_at         timestamptz NOT NULL,
    order_id           uuid,
    counter_offer_id   uuid,
    countered_offer_id uuid,
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, listing_id) REFERENCES listings (tenant_id, id)
);
CREATE INDEX offers_by_listing ON offers (tenant_id, listing_id, created_at, id);
SELECT enable_tenant_rls('offers');

CREATE TABLE orders (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    listing_id         uuid        NOT NULL,
    offer_id           uuid,
    buyer_id           uuid        NOT NULL,
    seller_id          uuid        NOT NULL,
    quantity           bigint      NOT NULL CHECK (quantity >= 1),
    unit_price         bigint      NOT NULL CHECK (unit_price >= 0),
    total_amount       bigint      NOT NULL CHECK (total_amount >= 0),
    currency           text        NOT NULL,
    commission_amount  bigint      NOT NULL CHECK (commission_amount >= 0),
    refunded_amount    bigint      NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= total_amount),
    state              text        NOT NULL
        CHECK (state IN ('placed', 'fulfilled', 'completed', 'canceled', 'disputed', 'refunded')),
    cancel_reason      text        NOT NULL DEFAULT '',
    fulfilled_at       timestamptz,
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, listing_id) REFERENCES listings (tenant_id, id),
    -- An offer places at most one order.
    CONSTRAINT orders_offer_key UNIQUE (tenant_id, offer_id)
);
CREATE INDEX orders_by_time ON orders (tenant_id, created_at, id);
CREATE INDEX orders_by_buyer ON orders (tenant_id, buyer_id, created_at, id);
CREATE INDEX orders_by_seller ON orders (tenant_id, seller_id, created_at, id);
SELECT enable_tenant_rls('orders');

CREATE TABLE disputes (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    order_id           uuid        NOT NULL,
    buyer_id           uuid        NOT NULL,
    seller_id          uuid        NOT NULL,
    opened_by          uuid        NOT NULL,
    reason             text        NOT NULL,
    state              text        NOT NULL CHECK (state IN ('open', 'escalated', 'resolved')),
    resolution         text        CHECK (resolution IN ('refund_buyer', 'release_to_seller')),
    resolution_note    text        NOT NULL DEFAULT '',
    resolved_by        text        NOT NULL DEFAULT '',
    refund_amount      bigint      NOT NULL DEFAULT 0 CHECK (refund_amount >= 0),
    escalated_at       timestamptz,
    resolved_at        timestamptz,
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
);
-- One unresolved dispute per order (the order's DISPUTED state says the same).
CREATE UNIQUE INDEX disputes_one_open_per_order ON disputes (tenant_id, order_id) WHERE state <> 'resolved';
CREATE INDEX disputes_by_time ON disputes (tenant_id, created_at, id);
SELECT enable_tenant_rls('disputes');
