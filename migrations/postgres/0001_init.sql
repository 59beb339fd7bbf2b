-- Users, tokens, chats, members and messages.
CREATE TABLE users (
    id                  UUID PRIMARY KEY NOT NULL,
    email               TEXT NOT NULL UNIQUE,
    password            TEXT NOT NULL,
    first_name          TEXT NOT NULL DEFAULT '',
    last_name           TEXT NOT NULL DEFAULT '',
    is_active           BOOLEAN NOT NULL DEFAULT TRUE,
    is_staff            BOOLEAN NOT NULL DEFAULT FALSE,
    is_superuser        BOOLEAN NOT NULL DEFAULT FALSE,
    date_joined         TIMESTAMPTZ NOT NULL,
    last_login          TIMESTAMPTZ,
    last_connexion_date TIMESTAMPTZ,
    online              BOOLEAN NOT NULL DEFAULT FALSE,
    avatar              TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_names ON users (last_name, first_name);

CREATE TABLE token_blacklist (
    jti        TEXT PRIMARY KEY NOT NULL,
    user_id    UUID NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX token_blacklist_expires ON token_blacklist (expires_at);

CREATE TABLE chats (
    id         UUID PRIMARY KEY NOT NULL,
    from_user  UUID REFERENCES users (id) ON DELETE SET NULL,
    to_user    UUID REFERENCES users (id) ON DELETE SET NULL,
    -- "smaller uuid:larger uuid" for two-person chats: one chat per pair, whoever created it.
    pair_key   TEXT UNIQUE,
    is_group   BOOLEAN NOT NULL DEFAULT FALSE,
    title      TEXT,
    last_seq   BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE chat_members (
    chat_id       UUID NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    joined_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id);

CREATE TABLE messages (
    id         UUID PRIMARY KEY NOT NULL,
    chat_id    UUID NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    author     UUID REFERENCES users (id) ON DELETE SET NULL,
    client_id  TEXT,
    body       TEXT NOT NULL,
    kind       INTEGER NOT NULL DEFAULT 0,
    extra_data TEXT,
    is_read    BOOLEAN NOT NULL DEFAULT FALSE,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX messages_chat_seq ON messages (chat_id, seq);
CREATE UNIQUE INDEX messages_client_id ON messages (chat_id, author, client_id);
