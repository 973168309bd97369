DROP INDEX IF EXISTS kaip_outbox_failing_keys;
