-- Who started a WebAuthn ceremony (the user, or for a passwordless sign-in a
-- digest of the client's address): each owner keeps only its newest few open
-- ceremonies, so starts cannot pile up rows until the hourly cleanup.
ALTER TABLE webauthn_ceremonies ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX webauthn_ceremonies_owner ON webauthn_ceremonies (owner, created_at);
