-- Bumped by every change that revokes the user's other sessions (password change
-- or reset, a second factor enabled or disabled). A sign-in compares the stamp
-- it read before checking the credentials with the stored one when it starts
-- its session: a sign-in that raced such a change starts nothing.
ALTER TABLE users ADD COLUMN security_stamp BIGINT NOT NULL DEFAULT 0;
