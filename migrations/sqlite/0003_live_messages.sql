-- History pages and counts read only live messages of one chat, in sequence order.
CREATE INDEX messages_live ON messages (chat_id, seq) WHERE deleted = FALSE;
