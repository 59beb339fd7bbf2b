-- Presence declared by the app (docs/protocol.md, "Presence"): `PATCH /api/user/{id}/` with
-- `online` sets both. A declared user stays online without a socket while they keep making
-- authenticated requests; the declaration time keeps the expiry sweep from undoing a
-- declaration made while it ran.
ALTER TABLE users ADD COLUMN presence_declared BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN presence_declared_at TEXT;
