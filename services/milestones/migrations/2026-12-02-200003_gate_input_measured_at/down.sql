ALTER TABLE ms_gate_inputs DROP COLUMN measured_at;
