-- Accounts, credentials, sessions and login throttling. All global (a user is not a tenant's):
-- read and written through unscoped transactions.

CREATE TABLE users (
    id             uuid        PRIMARY KEY,
    -- Stored as given; uniqueness and lookups are case-insensitive (users_email_key).
    email          text        NOT NULL,
    display_name   text        NOT NULL,
    email_verified boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Separate from users so that no query of a profile ever reads a hash by accident.
CREATE TABLE credentials (
    user_id       uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- argon2id PHC string: algorithm, cost and salt travel with the hash.
    password_hash text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Single-use email verification tokens, stored as SHA-256.
CREATE TABLE email_verifications (
    token_hash bytea       PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_verifications_open ON email_verifications (user_id) WHERE used_at IS NULL;

-- A session is one refresh-token family, from login to logout or revocation. It belongs to the
-- user across tenants; `scope_tenant` only records which tenant its current tokens are for.
CREATE TABLE sessions (
    id            uuid        PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope_tenant  uuid,
    user_agent    text        NOT NULL DEFAULT '',
    ip_address    text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text
);
CREATE INDEX sessions_by_user ON sessions (user_id, id DESC);
CREATE INDEX sessions_live_by_scope ON sessions (scope_tenant, user_id) WHERE revoked_at IS NULL;

-- Refresh tokens, stored as SHA-256. Only the newest of a session is unused; presenting a used
-- one is reuse, and revokes the session.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY,
    session_id uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Failed-login counters: `account:<email, lowercased>` (whether or not the account exists) and
-- `ip:<address>`.
CREATE TABLE login_throttle (
    key             text        PRIMARY KEY,
    failures        integer     NOT NULL,
    last_failure_at timestamptz NOT NULL,
    next_attempt_at timestamptz,
    locked_until    timestamptz
);
