-- When an integration measured a benchmark result (`BenchmarkResultReported.measured_at`):
-- a report older than the latest one recorded for the same gate, team and component (a
-- dead-lettered run replayed late) is refused instead of becoming the latest input.
-- NULL for inputs entered by REST and for those recorded before this migration.
ALTER TABLE ms_gate_inputs ADD COLUMN measured_at timestamptz;
