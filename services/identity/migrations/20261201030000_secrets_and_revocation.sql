-- A verification is named by an id in events, never by its token: the notifier exchanges the id
-- for a fresh token over gRPC, so no secret sits in the event stream.
ALTER TABLE email_verifications ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE email_verifications ADD CONSTRAINT email_verifications_id_key UNIQUE (id);

-- When the latest access token issued for the session expires: a revocation announces it so the
-- gateway's deny-list entry can expire with it. Sessions from before this column get a bound
-- longer than any access-token lifetime.
ALTER TABLE sessions ADD COLUMN access_expires_at timestamptz;
UPDATE sessions SET access_expires_at = last_used_at + interval '1 day';
ALTER TABLE sessions ALTER COLUMN access_expires_at SET DEFAULT now();
ALTER TABLE sessions ALTER COLUMN access_expires_at SET NOT NULL;
