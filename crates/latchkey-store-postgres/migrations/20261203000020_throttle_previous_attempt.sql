-- When the attempt before the latest was reserved: more reserved attempts than
-- the lockout threshold with a recent previous one are in flight (refused
-- unchecked, retry in a second); with an old one they are leftovers of a crash
-- and count as failures (the identifier locks) instead of blocking it forever.
ALTER TABLE login_throttles ADD COLUMN previous_attempt_at TIMESTAMPTZ;
