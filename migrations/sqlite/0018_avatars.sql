-- Avatars (docs/media.md): the upload a user made their picture. It is neither posted in a chat
-- nor swept as unattached while it is in use; a deleted user leaves it NULL and the sweeper
-- takes it. More than one row per user only after a failed change, which the next change
-- cleans up.
ALTER TABLE attachments ADD COLUMN avatar_of BLOB REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX attachments_avatar ON attachments (avatar_of) WHERE avatar_of IS NOT NULL;
