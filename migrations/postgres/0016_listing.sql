-- The read paths the app polls (docs/benchmarks.md, "The finished app's load").
-- A chat's deleted (tombstoned) messages, kept with every delete: with the per-chat sequence,
-- `last_seq - deleted_count` is the number of live messages, so a history page's DRF `count`
-- costs no scan.
ALTER TABLE chats ADD COLUMN deleted_count BIGINT NOT NULL DEFAULT 0;
UPDATE chats SET deleted_count = d.n
  FROM (SELECT chat_id, COUNT(*) AS n FROM messages WHERE deleted GROUP BY chat_id) d
  WHERE d.chat_id = chats.id;
-- Unread live messages per chat in sequence order, author included: a chat list's unread count
-- reads only these entries from the member's read mark on, instead of every message after it
-- (an app that marks messages read one by one never moves the mark).
CREATE INDEX messages_unread ON messages (chat_id, seq) INCLUDE (author) WHERE is_read = FALSE AND deleted = FALSE;
