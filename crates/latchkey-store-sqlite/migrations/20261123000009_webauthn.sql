-- Registered passkeys: public data only (webauthn-rs Passkey JSON, counter, flags).
CREATE TABLE webauthn_credentials (
    id              BLOB    NOT NULL PRIMARY KEY,
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   BLOB    NOT NULL,
    name            TEXT    NOT NULL,
    passkey         TEXT    NOT NULL,
    counter         INTEGER NOT NULL,
    backup_eligible INTEGER NOT NULL,
    backup_state    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX webauthn_credentials_credential_id ON webauthn_credentials (credential_id);
CREATE INDEX webauthn_credentials_user_id ON webauthn_credentials (user_id);

-- Challenges waiting for an authenticator's answer; single use, short lived.
CREATE TABLE webauthn_ceremonies (
    id         BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    name       TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
