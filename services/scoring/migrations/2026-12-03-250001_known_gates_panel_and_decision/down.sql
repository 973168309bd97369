DROP TABLE decided_known_gates;
ALTER TABLE known_gates DROP COLUMN expert_panel;
