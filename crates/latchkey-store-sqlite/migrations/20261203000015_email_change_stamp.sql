-- The account's security stamp when an email change was requested: the change
-- is confirmed only while the stamp is unchanged, so a password reset or change,
-- a factor change or a sign-out everywhere voids every pending change (an
-- attacker who once knew the password cannot take the account back through a
-- link they requested before the owner recovered it). Pending changes made
-- before this column existed cannot be told apart: they are void.
DELETE FROM email_change_tokens;
ALTER TABLE email_change_tokens ADD COLUMN security_stamp INTEGER NOT NULL DEFAULT 0;
