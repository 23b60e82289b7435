-- Which rules made users.email_normalized: 1 = trim + lower-case (before),
-- 2 = NFKC + Unicode case folding, UTS 46 domains. The two agree on ASCII
-- addresses; the others are normalized again at start-up, in batches
-- (latchkey_core::account::renormalize_emails), then marked 2.
ALTER TABLE users ADD COLUMN email_normalization INTEGER NOT NULL DEFAULT 2;
UPDATE users SET email_normalization = 1 WHERE email GLOB '*[^ -~]*';
CREATE INDEX users_email_normalization_stale ON users (id) WHERE email_normalization < 2;
