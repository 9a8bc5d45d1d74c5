-- The devices each user has signed in from, to tell a sign-in from a new device (and announce
-- it). A device is a User-Agent on a client network (an IPv4 /24 or IPv6 /48), kept only as a
-- SHA-256 of the two: nothing here says where anyone was.
CREATE TABLE known_devices (
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_hash   bytea       NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_hash)
);
