-- Users, tokens, chats, members and messages. SQLite stores uuids as 16-byte blobs and
-- timestamps as RFC 3339 text (truncated to microseconds, so text order is time order).
CREATE TABLE users (
    id                  BLOB PRIMARY KEY NOT NULL,
    email               TEXT NOT NULL UNIQUE,
    password            TEXT NOT NULL,
    first_name          TEXT NOT NULL DEFAULT '',
    last_name           TEXT NOT NULL DEFAULT '',
    is_active           BOOLEAN NOT NULL DEFAULT 1,
    is_staff            BOOLEAN NOT NULL DEFAULT 0,
    is_superuser        BOOLEAN NOT NULL DEFAULT 0,
    date_joined         TEXT NOT NULL,
    last_login          TEXT,
    last_connexion_date TEXT,
    online              BOOLEAN NOT NULL DEFAULT 0,
    avatar              TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX users_names ON users (last_name, first_name);

CREATE TABLE token_blacklist (
    jti        TEXT PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX token_blacklist_expires ON token_blacklist (expires_at);

CREATE TABLE chats (
    id         BLOB PRIMARY KEY NOT NULL,
    from_user  BLOB REFERENCES users (id) ON DELETE SET NULL,
    to_user    BLOB REFERENCES users (id) ON DELETE SET NULL,
    -- "smaller uuid:larger uuid" for two-person chats: one chat per pair, whoever created it.
    pair_key   TEXT UNIQUE,
    is_group   BOOLEAN NOT NULL DEFAULT 0,
    title      TEXT,
    last_seq   BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE chat_members (
    chat_id       BLOB NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_admin      BOOLEAN NOT NULL DEFAULT 0,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    joined_at     TEXT NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id);

CREATE TABLE messages (
    id         BLOB PRIMARY KEY NOT NULL,
    chat_id    BLOB NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    author     BLOB REFERENCES users (id) ON DELETE SET NULL,
    client_id  TEXT,
    body       TEXT NOT NULL,
    kind       INTEGER NOT NULL DEFAULT 0,
    extra_data TEXT,
    is_read    BOOLEAN NOT NULL DEFAULT 0,
    deleted    BOOLEAN NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX messages_chat_seq ON messages (chat_id, seq);
CREATE UNIQUE INDEX messages_client_id ON messages (chat_id, author, client_id);
