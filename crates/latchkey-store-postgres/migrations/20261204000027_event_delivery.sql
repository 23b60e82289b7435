-- A user's events in commit (place) order: the live event streams read what
-- is new after the place they sent last.
CREATE INDEX security_events_user_seq ON security_events (user_id, seq);

-- Webhooks (core `webhooks`). The secret is sealed under the master key (the
-- webhook id as associated data); during a rotation the previous one signs
-- alongside until `previous_until`. `static_name` is set for the endpoints of
-- `[[webhooks.endpoints]]` (kept in line with the configuration at start).
-- Events placed at or before `after_seq` predate the webhook.
CREATE TABLE webhooks (
    id                     UUID        NOT NULL PRIMARY KEY,
    url                    TEXT        NOT NULL,
    events                 TEXT        NOT NULL,
    description            TEXT,
    secret_sealed          BYTEA       NOT NULL,
    previous_secret_sealed BYTEA,
    previous_until         TIMESTAMPTZ,
    static_name            TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    after_seq              BIGINT      NOT NULL
);

-- One delivery of one event to one webhook: due while `next_attempt_at` is
-- set; then delivered (`delivered_at`) or a dead letter (`failed_at`).
-- `last_error` holds at most 1 KiB of the last failure.
CREATE TABLE webhook_deliveries (
    id              UUID        NOT NULL PRIMARY KEY,
    webhook_id      UUID        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        UUID        NOT NULL,
    kind            TEXT        NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    failed_at       TIMESTAMPTZ,
    last_error      TEXT
);
CREATE UNIQUE INDEX webhooks_static_name ON webhooks (static_name);
CREATE UNIQUE INDEX webhook_deliveries_webhook_event ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at);
CREATE INDEX webhook_deliveries_failed_at ON webhook_deliveries (failed_at);
CREATE INDEX webhook_deliveries_delivered_at ON webhook_deliveries (delivered_at);

-- How far each delivery worker (webhook dispatch, the Redis stream) has read
-- the event table, and who holds it: one holder at a time across nodes.
CREATE TABLE event_positions (
    name        TEXT        NOT NULL PRIMARY KEY,
    seq         BIGINT      NOT NULL,
    holder      TEXT,
    lease_until TIMESTAMPTZ
);
