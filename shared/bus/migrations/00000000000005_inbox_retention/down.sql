DROP INDEX IF EXISTS kaip_inbox_processed_at;
