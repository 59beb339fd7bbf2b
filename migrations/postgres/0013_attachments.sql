-- Uploaded files (POST /api/attachments/). The bytes live in the object store (`media_root` or
-- S3) under `attachments/<id>` and `attachments/<id>.thumb`; this row says what they are and who
-- may read them: the owner, and once a message carries it (`attached_at`), the chat's members.
CREATE TABLE attachments (
    id           UUID PRIMARY KEY NOT NULL,
    owner        UUID REFERENCES users (id) ON DELETE SET NULL,
    -- The chat it was uploaded for or posted in; a deleted chat leaves the row to the sweeper.
    chat_id      UUID REFERENCES chats (id) ON DELETE SET NULL,
    content_type TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    width        INTEGER,
    height       INTEGER,
    thumb_type   TEXT,
    thumb_size   BIGINT,
    created_at   TIMESTAMPTZ NOT NULL,
    attached_at  TIMESTAMPTZ
);
CREATE INDEX attachments_owner_created ON attachments (owner, created_at);
CREATE INDEX attachments_unattached ON attachments (created_at) WHERE attached_at IS NULL;
CREATE INDEX attachments_chat ON attachments (chat_id);
