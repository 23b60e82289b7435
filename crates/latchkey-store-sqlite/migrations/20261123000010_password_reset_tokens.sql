-- Password-reset tokens, stored only as SHA-256 hashes; single use, one live per user.
CREATE TABLE password_reset_tokens (
    token_hash BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX password_reset_tokens_user_id ON password_reset_tokens (user_id);
