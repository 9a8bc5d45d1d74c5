-- The append-only audit log: tenant actions in `audit_log` (tenant-scoped, under RLS), account
-- actions (register, login, password, sessions) in `account_audit_log` (global).
--
-- Append-only twice over: the service role gives up UPDATE, DELETE and TRUNCATE on both tables,
-- and a trigger refuses them for anyone who still has them.

CREATE TABLE audit_log (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    actor_kind  text        NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'service', 'system')),
    actor_id    text        NOT NULL,
    action      text        NOT NULL,
    target_type text        NOT NULL,
    target_id   text        NOT NULL,
    request_id  text        NOT NULL DEFAULT '',
    ip_address  text        NOT NULL DEFAULT '',
    metadata    jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_rls('audit_log');

CREATE TABLE account_audit_log (
    id          uuid        PRIMARY KEY,
    -- The account acted on (not a foreign key: the record outlives the account).
    user_id     uuid        NOT NULL,
    actor_kind  text        NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'service', 'system')),
    actor_id    text        NOT NULL,
    action      text        NOT NULL,
    target_type text        NOT NULL,
    target_id   text        NOT NULL,
    request_id  text        NOT NULL DEFAULT '',
    ip_address  text        NOT NULL DEFAULT '',
    metadata    jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_audit_log_by_user ON account_audit_log (user_id, id DESC);

CREATE FUNCTION refuse_audit_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER account_audit_log_append_only BEFORE UPDATE OR DELETE ON account_audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER account_audit_log_no_truncate BEFORE TRUNCATE ON account_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, account_audit_log FROM CURRENT_USER;
