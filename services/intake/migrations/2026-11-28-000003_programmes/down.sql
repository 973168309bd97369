ALTER TABLE calls DROP COLUMN programme_id;
DROP TABLE programmes;
