-- Pending events whose publication failed block the later events of their key (the relay
-- claims only a blocked key's head). This index answers "is there an earlier failing event
-- of this key?" without scanning the backlog.
CREATE INDEX kaip_outbox_failing_keys ON kaip_outbox (topic, event_key, seq)
    WHERE sent_at IS NULL AND last_error IS NOT NULL;
