-- The user search matched each term against LOWER(first_name) and LOWER(last_name), two
-- lower-casings per row per term: ~20 ms of PostgreSQL CPU for a term matching 8,000 names.
-- Stored once here, one LIKE per term reads it. The newline cannot occur in a search term (terms
-- are split on whitespace), so a term never matches across the two names.
ALTER TABLE users ADD COLUMN search_text TEXT
    GENERATED ALWAYS AS (lower(first_name) || E'\n' || lower(last_name)) STORED;
