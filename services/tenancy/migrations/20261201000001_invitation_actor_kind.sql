-- The inviter as a typed actor (user or API key), not only the `sub` of its token, so the kind
-- travels from the request through the row to the event without being guessed.
-- Invitations written before this were all made with user tokens or API keys; nothing recorded
-- which, and the only consumer of the value (the invitation event) was published already, so
-- older rows are marked as users.
ALTER TABLE invitations
    ADD COLUMN invited_by_kind text NOT NULL DEFAULT 'user'
        CHECK (invited_by_kind IN ('user', 'api_key', 'service', 'system'));
ALTER TABLE invitations ALTER COLUMN invited_by_kind DROP DEFAULT;
