-- Group commit looks up earlier clientIds of a whole batch at once, by clientId alone.
CREATE INDEX messages_client_id_lookup ON messages (client_id) WHERE client_id IS NOT NULL;
