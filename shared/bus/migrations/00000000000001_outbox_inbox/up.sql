-- The event backbone's tables, present in every service's database.

-- Events written in the same transaction as the state change that caused them. The relay
-- publishes rows in `seq` order and sets `sent_at` only after the broker acknowledged them.
-- Sent rows are kept for a retention period so they can be republished (a memory broker
-- forgets everything when it stops; a real cluster can lose a topic).
CREATE TABLE kaip_outbox (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     UUID NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    event_key    TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payload      JSONB NOT NULL,
    headers      JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    sent_at      TIMESTAMPTZ
);
CREATE INDEX kaip_outbox_unsent ON kaip_outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX kaip_outbox_sent_at ON kaip_outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Every event a consumer has processed, recorded in the same transaction as its effects,
-- so a redelivered event changes nothing. `trace_id` ties the effect to the request that
-- caused it.
CREATE TABLE kaip_inbox (
    event_id      UUID PRIMARY KEY,
    event_type    TEXT NOT NULL,
    topic         TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset  BIGINT NOT NULL,
    trace_id      TEXT,
    outcome       TEXT NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
