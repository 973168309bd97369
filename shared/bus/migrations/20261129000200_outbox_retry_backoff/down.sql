ALTER TABLE kaip_outbox DROP COLUMN last_attempt_at, DROP COLUMN failures;
