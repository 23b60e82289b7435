-- Sessions (one sign-in on one device); each is also its refresh-token family.
CREATE TABLE sessions (
    id                  BLOB    NOT NULL PRIMARY KEY,
    user_id             BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER,
    revoke_reason       TEXT,
    ip                  TEXT,
    user_agent          TEXT,
    device_type         TEXT    NOT NULL,
    device_os           TEXT    NOT NULL,
    device_browser      TEXT    NOT NULL,
    fingerprint         TEXT    NOT NULL,
    remember_me         INTEGER NOT NULL,
    amr                 TEXT    NOT NULL
) STRICT;
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- Refresh tokens, stored only as SHA-256 hashes; single use.
CREATE TABLE refresh_tokens (
    id         BLOB    NOT NULL PRIMARY KEY,
    session_id BLOB    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE UNIQUE INDEX refresh_tokens_token_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- Access tokens revoked before their expiry (logout), by jti.
CREATE TABLE denied_access_tokens (
    jti        BLOB    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX denied_access_tokens_expires_at ON denied_access_tokens (expires_at);

-- The append-only security event log.
CREATE TABLE security_events (
    id         BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    session_id BLOB,
    ip         TEXT
) STRICT;
CREATE INDEX security_events_user_id ON security_events (user_id, created_at);
