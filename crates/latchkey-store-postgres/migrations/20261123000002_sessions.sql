-- Sessions (one sign-in on one device); each is also its refresh-token family.
CREATE TABLE sessions (
    id                  UUID        NOT NULL PRIMARY KEY,
    user_id             UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          TIMESTAMPTZ NOT NULL,
    last_seen_at        TIMESTAMPTZ NOT NULL,
    idle_expires_at     TIMESTAMPTZ NOT NULL,
    absolute_expires_at TIMESTAMPTZ NOT NULL,
    revoked_at          TIMESTAMPTZ,
    revoke_reason       TEXT,
    ip                  TEXT,
    user_agent          TEXT,
    device_type         TEXT        NOT NULL,
    device_os           TEXT        NOT NULL,
    device_browser      TEXT        NOT NULL,
    fingerprint         TEXT        NOT NULL,
    remember_me         BOOLEAN     NOT NULL,
    amr                 TEXT        NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- Refresh tokens, stored only as SHA-256 hashes; single use.
CREATE TABLE refresh_tokens (
    id         UUID        NOT NULL PRIMARY KEY,
    session_id UUID        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX refresh_tokens_token_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- Access tokens revoked before their expiry (logout), by jti.
CREATE TABLE denied_access_tokens (
    jti        UUID        NOT NULL PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX denied_access_tokens_expires_at ON denied_access_tokens (expires_at);

-- The append-only security event log.
CREATE TABLE security_events (
    id         UUID        NOT NULL PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    session_id UUID,
    ip         TEXT
);
CREATE INDEX security_events_user_id ON security_events (user_id, created_at);
