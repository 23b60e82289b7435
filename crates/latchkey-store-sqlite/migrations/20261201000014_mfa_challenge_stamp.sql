-- The account's security stamp when the password step of a two-step sign-in
-- succeeded: the second step is refused when a password or factor change moved
-- it on in between (the challenge vouches for a state that is gone).
ALTER TABLE mfa_challenges ADD COLUMN security_stamp INTEGER NOT NULL DEFAULT 0;
