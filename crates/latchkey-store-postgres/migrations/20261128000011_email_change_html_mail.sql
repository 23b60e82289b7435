-- HTML alternative of outgoing mail (rendered from templates; NULL: text only).
ALTER TABLE mail_outbox ADD COLUMN body_html TEXT;

-- Pending email changes: the token mailed to the new address, stored only as its
-- SHA-256; single use, one live per user.
CREATE TABLE email_change_tokens (
    token_hash           BYTEA       NOT NULL PRIMARY KEY,
    user_id              UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email            TEXT        NOT NULL,
    new_email_normalized TEXT        NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    expires_at           TIMESTAMPTZ NOT NULL,
    used_at              TIMESTAMPTZ
);
CREATE INDEX email_change_tokens_user_id ON email_change_tokens (user_id);
