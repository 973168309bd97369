DROP INDEX calls_one_open_replacement;
CREATE UNIQUE INDEX calls_one_open_replacement ON calls (replaces_gate)
    WHERE replaces_gate IS NOT NULL AND decided_at IS NULL;
ALTER TABLE calls DROP COLUMN cancelled_at;
DROP TABLE call_cancellations;
DROP TABLE selected_teams;
