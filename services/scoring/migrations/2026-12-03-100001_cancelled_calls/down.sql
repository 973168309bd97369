ALTER TABLE calls DROP COLUMN cancelled_at;
