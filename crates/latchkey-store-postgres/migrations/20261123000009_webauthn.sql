-- Registered passkeys: public data only (webauthn-rs Passkey JSON, counter, flags).
CREATE TABLE webauthn_credentials (
    id              UUID        NOT NULL PRIMARY KEY,
    user_id         UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   BYTEA       NOT NULL,
    name            TEXT        NOT NULL,
    passkey         TEXT        NOT NULL,
    counter         BIGINT      NOT NULL,
    backup_eligible BOOLEAN     NOT NULL,
    backup_state    BOOLEAN     NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_used_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX webauthn_credentials_credential_id ON webauthn_credentials (credential_id);
CREATE INDEX webauthn_credentials_user_id ON webauthn_credentials (user_id);

-- Challenges waiting for an authenticator's answer; single use, short lived.
CREATE TABLE webauthn_ceremonies (
    id         UUID        NOT NULL PRIMARY KEY,
    user_id    UUID        REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT        NOT NULL,
    state      TEXT        NOT NULL,
    name       TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
