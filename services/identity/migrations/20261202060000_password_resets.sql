-- Password resets (global, like email verifications): a single-use token, stored as SHA-256, named
-- in events by `id` only. The notifier exchanges the id for a fresh token over gRPC, so no secret
-- sits in the event stream. A new request supersedes the user's open ones (used_at set).
CREATE TABLE password_resets (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea       NOT NULL UNIQUE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_resets_open ON password_resets (user_id) WHERE used_at IS NULL;
