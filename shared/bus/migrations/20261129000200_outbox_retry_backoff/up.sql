-- A failing row is retried after a backoff that grows with its consecutive failures, counted
-- apart from `attempts` (which counts sends too): a row that was published and later
-- republished is not "stuck" for its earlier sends.
ALTER TABLE kaip_outbox
    ADD COLUMN failures INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN last_attempt_at TIMESTAMPTZ;
UPDATE kaip_outbox SET failures = attempts WHERE sent_at IS NULL AND last_error IS NOT NULL;
