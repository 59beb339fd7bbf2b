-- The user search's lower-cased names, one LIKE per term (see the PostgreSQL migration).
-- SQLite adds only VIRTUAL generated columns to an existing table: computed when read, which
-- costs what the two LOWER() calls cost before and keeps one statement for both backends.
ALTER TABLE users ADD COLUMN search_text TEXT
    GENERATED ALWAYS AS (lower(first_name) || char(10) || lower(last_name)) VIRTUAL;
