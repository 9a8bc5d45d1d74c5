-- The audit log's append-only guarantee must not be undoable by the role that appends to it: the
-- tables and their trigger function pass to the `<role>_owner` role (which nobody logs in as), and
-- the service keeps SELECT and INSERT only. The service cannot hand ownership away by itself, so
-- provisioning (`keel_kernel::db::provision`) gives it `keel_seal_append_only`. Where roles are
-- provisioned by other means (a database operator) the function may be missing: the operator must
-- then do the same, and this migration says so rather than failing the service's start.
DO $$
BEGIN
    IF to_regprocedure('keel_seal_append_only(text)') IS NULL THEN
        RAISE WARNING 'keel_seal_append_only(text) is missing: the audit tables stay owned by the '
            'service role; hand them to a role it does not log in as, with SELECT and INSERT granted';
        RETURN;
    END IF;
    PERFORM keel_seal_append_only('audit_log');
    PERFORM keel_seal_append_only('account_audit_log');
END
$$;
