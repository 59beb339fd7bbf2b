-- The push log (admin site, issue 14): one row per send to one device, from the outbox workers
-- and from test pushes, with what the provider answered. Bounded: the workers prune rows older
-- than a week and keep at most the newest 100,000.
CREATE TABLE push_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- No foreign key: the log outlives a deleted device.
    device_id   INTEGER NOT NULL,
    device_kind TEXT NOT NULL,
    -- `message` (an outbox job) or `test`.
    source      TEXT NOT NULL,
    -- `sent`, `gone`, `retry`, `failed`.
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX push_attempts_user ON push_attempts (user_id, id);
CREATE INDEX push_attempts_at ON push_attempts (at);
-- The push log lists a user's outbox jobs in every state (the older index holds pending ones).
CREATE INDEX push_outbox_user_all ON push_outbox (user_id, id);
