-- The version of billing's last applied entitlements change (`billing.entitlements.changed`), so
-- a redelivered or out-of-order older change cannot undo a newer plan.
ALTER TABLE tenants ADD COLUMN plan_version bigint NOT NULL DEFAULT 0;
