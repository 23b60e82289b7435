-- The session that asked for an email change: the token is issued only while
-- it is live and is deleted when it is revoked (one session or all). NULL for
-- tokens issued before (they still die with the account's security stamp).
ALTER TABLE email_change_tokens ADD COLUMN session_id UUID;
CREATE INDEX email_change_tokens_session_id ON email_change_tokens (session_id);
