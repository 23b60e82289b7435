-- When a signing key starts signing: published in the JWKS from created_at, it
-- signs only from activates_at (resource servers caching the JWKS know it by
-- then). Keys created before this column existed were active at once.
ALTER TABLE signing_keys ADD COLUMN activates_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch';
UPDATE signing_keys SET activates_at = created_at;
