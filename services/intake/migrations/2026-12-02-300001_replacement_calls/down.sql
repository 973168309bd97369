ALTER TABLE calls DROP COLUMN filled;
DROP INDEX calls_one_open_replacement;
ALTER TABLE calls DROP COLUMN replaces_gate;
ALTER TABLE calls DROP COLUMN replaces;
DROP TABLE decided_gates;
