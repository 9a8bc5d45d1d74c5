-- A replay is a request the consumer itself carries out (it runs its handler on the stored
-- envelope), not a re-publish: a service's NATS user may publish only its own events, and a dead
-- letter is usually another context's event.
ALTER TABLE dead_letters ADD COLUMN replay_requested_at timestamptz;
CREATE INDEX dead_letters_replay_requested ON dead_letters (consumer, id)
    WHERE replay_requested_at IS NOT NULL;
