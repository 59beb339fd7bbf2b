-- Push notifications (issue 12): devices as fcm-django keeps them, a per-member mute flag, and
-- the push outbox, written in the transaction that stores the message.
CREATE TABLE devices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT,
    -- The FCM token, or (kind `web`) the browser's Push API subscription as JSON.
    registration_id TEXT NOT NULL UNIQUE,
    device_id       TEXT,
    active          BOOLEAN NOT NULL DEFAULT 1,
    kind            TEXT NOT NULL,
    date_created    TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX devices_user ON devices (user_id, id);

ALTER TABLE chat_members ADD COLUMN muted BOOLEAN NOT NULL DEFAULT 0;

-- One row per (message, recipient). `status`: pending, sent, failed, dropped. A pending row is
-- due at `due_at` (its creation plus the coalescing window, or a retry's backoff); a worker that
-- claims it holds it until `leased_until`.
CREATE TABLE push_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    chat_id      BLOB NOT NULL,
    message_id   BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    leased_until TEXT,
    -- Devices (ids, comma-separated) this job already reached: a retry skips them.
    done_devices TEXT NOT NULL DEFAULT '',
    last_error   TEXT,
    finished_at  TEXT
);
CREATE INDEX push_outbox_due ON push_outbox (due_at) WHERE status = 'pending';
CREATE INDEX push_outbox_user ON push_outbox (user_id) WHERE status = 'pending';
CREATE INDEX push_outbox_message ON push_outbox (message_id);
