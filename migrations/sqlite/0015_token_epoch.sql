-- Revocation (docs/security.md): a token carries its user's epoch when issued and is refused
-- once the epoch has moved on (password change or reset, deactivation, refresh-token reuse).
-- Tokens without an epoch claim (SimpleJWT's, or issued before this) count as epoch 0.
ALTER TABLE users ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0;
-- A refresh token blacklisted because it was rotated out (not by a logout): using it again
-- means it was copied, and ends every session of its user.
ALTER TABLE token_blacklist ADD COLUMN rotated BOOLEAN NOT NULL DEFAULT 0;
