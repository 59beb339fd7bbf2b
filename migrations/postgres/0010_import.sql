-- `causerie import-django`: what a re-run needs to read only the rows changed since the last one.
-- The next run re-reads a source table's rows whose updatedAt is at or after `updated_after`.
CREATE TABLE django_import_watermarks (
    source_table  TEXT PRIMARY KEY NOT NULL,
    updated_after TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL
);
-- A digest (SHA-256, hex) of the Django password hash last imported for each user: a re-import
-- writes the hash again only when Django's changed, so a hash upgraded to argon2id at login stays.
CREATE TABLE django_import_users (
    user_id         UUID PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_digest TEXT NOT NULL
);
-- Django chats merged into the chat of their pair (the series could make two for one pair).
CREATE TABLE django_import_chat_aliases (
    django_chat_id UUID PRIMARY KEY NOT NULL,
    chat_id        UUID NOT NULL REFERENCES chats (id) ON DELETE CASCADE
);
