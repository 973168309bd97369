DROP TABLE eliminated_teams;
DROP TABLE known_gates;
DROP TABLE gate_panel_voids;
ALTER TABLE gate_panels DROP COLUMN replacement_calls;
DROP INDEX gate_panels_gate;
ALTER TABLE gate_panels ADD CONSTRAINT gate_panels_gate_key UNIQUE (gate);
