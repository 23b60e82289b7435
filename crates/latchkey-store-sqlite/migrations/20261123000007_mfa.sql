-- TOTP factors: one per user (pending until confirmed). The seed is sealed with the
-- keyring (XChaCha20-Poly1305, the row id as associated data); key_id names the key.
CREATE TABLE mfa_totp (
    id           BLOB    NOT NULL PRIMARY KEY,
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret       BLOB    NOT NULL,
    key_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_step    INTEGER
) STRICT;
CREATE UNIQUE INDEX mfa_totp_user_id ON mfa_totp (user_id);
CREATE INDEX mfa_totp_key_id ON mfa_totp (key_id);

-- Recovery codes, stored only as keyed hashes; single use.
CREATE TABLE mfa_recovery_codes (
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

-- Sign-in challenges between the password and the second factor.
CREATE TABLE mfa_challenges (
    id          BLOB    NOT NULL PRIMARY KEY,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    used_at     INTEGER,
    remember_me INTEGER NOT NULL,
    mode        TEXT    NOT NULL,
    lockout_key BLOB    NOT NULL
) STRICT;
CREATE UNIQUE INDEX mfa_challenges_token_hash ON mfa_challenges (token_hash);
CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);
