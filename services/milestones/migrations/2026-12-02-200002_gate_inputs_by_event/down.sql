-- The old check knows no `integration` source: such inputs are kept as `imported` (their
-- reason still names the run and the integration). The records are immutable, so the
-- trigger is set aside for this one rewrite.
ALTER TABLE ms_gate_inputs DISABLE TRIGGER immutable;
UPDATE ms_gate_inputs SET source = 'imported' WHERE source = 'integration';
ALTER TABLE ms_gate_inputs ENABLE TRIGGER immutable;
ALTER TABLE ms_gate_inputs DROP CONSTRAINT ms_gate_inputs_source_check;
ALTER TABLE ms_gate_inputs ADD CONSTRAINT ms_gate_inputs_source_check
    CHECK (source IN ('entered', 'evidence', 'imported', 'expert_panel'));
ALTER TABLE ms_gate_components DROP COLUMN kind;
