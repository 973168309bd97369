-- The consumer purges inbox rows past `kafka.inbox_retention_hours`; this keeps that scan
-- cheap however large the inbox grows.
CREATE INDEX IF NOT EXISTS kaip_inbox_processed_at ON kaip_inbox (processed_at);
