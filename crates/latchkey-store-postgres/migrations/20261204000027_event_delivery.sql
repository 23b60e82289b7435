-- A user's events in commit (place) order: the live event streams read what
-- is new after the place they sent last.
CREATE INDEX security_events_user_seq ON security_events (user_id, seq);
