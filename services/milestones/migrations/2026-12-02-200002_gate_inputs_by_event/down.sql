ALTER TABLE ms_gate_inputs DROP CONSTRAINT ms_gate_inputs_source_check;
ALTER TABLE ms_gate_inputs ADD CONSTRAINT ms_gate_inputs_source_check
    CHECK (source IN ('entered', 'evidence', 'imported', 'expert_panel'));
ALTER TABLE ms_gate_components DROP COLUMN kind;
