-- Not reversible once a panel was voided: the one-panel-per-gate constraint would not hold
-- (a gate with a voided panel and a new one), and dropping the voids would reopen a voided
-- panel (it could then be assigned, scored and closed, publishing its scores). Refuse
-- clearly instead of failing half-way or silently reopening it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM gate_panel_voids) THEN
        RAISE EXCEPTION 'cannot revert panel voids: % panel(s) were voided; reverting would reopen them or break one panel per gate (restore from a backup instead)',
            (SELECT count(*) FROM gate_panel_voids)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END $$;

DROP TABLE eliminated_teams;
DROP TABLE known_gates;
DROP TABLE gate_panel_voids;
ALTER TABLE gate_panels DROP COLUMN replacement_calls;
DROP INDEX gate_panels_gate;
ALTER TABLE gate_panels ADD CONSTRAINT gate_panels_gate_key UNIQUE (gate);
