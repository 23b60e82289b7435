-- Queued mail bodies hold live one-time links (reset, verification, email
-- change): they are stored sealed (XChaCha20-Poly1305 under a key derived from
-- the master key, the message id as associated data) in body_sealed, and
-- body_text / body_html stay empty for new rows. Rows queued before this
-- column existed are sent as they are. Once a message is sent or given up, its
-- bodies are scrubbed; the bodies of messages already finished are scrubbed now.
ALTER TABLE mail_outbox ADD COLUMN body_sealed BLOB;
UPDATE mail_outbox SET body_text = '', body_html = NULL
 WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL;
