-- Password-reset tokens, stored only as SHA-256 hashes; single use, one live per user.
CREATE TABLE password_reset_tokens (
    token_hash BYTEA       NOT NULL PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX password_reset_tokens_user_id ON password_reset_tokens (user_id);
