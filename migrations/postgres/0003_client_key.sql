-- Fewer indexes to update per stored message (each one dirties pages in every commit):
-- one unique index on clientId first serves both the batch lookup by clientId and the
-- "one message per (chat, author, clientId)" rule, replacing the two earlier ones.
DROP INDEX messages_client_id_lookup;
DROP INDEX messages_client_id;
CREATE UNIQUE INDEX messages_client_key ON messages (client_id, chat_id, author) WHERE client_id IS NOT NULL;
