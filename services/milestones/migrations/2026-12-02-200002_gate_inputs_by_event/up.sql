-- Gate inputs that arrive by event (issue #11): scoring's expert panel (`GatePanelScored`,
-- recorded with source `expert_panel`) and benchmark integrations
-- (`BenchmarkResultReported`, recorded with the new source `integration`).
--
-- A component's `kind` says which event may land on it: `benchmark`, `expert_panel` (at most
-- one per gate) or `other`. NULL on components stored before this migration: the service
-- reads them by the template's conventions (group `benchmarks`: benchmark; key
-- `expert-panel`: expert_panel), so no record is rewritten.
ALTER TABLE ms_gate_components
    ADD COLUMN kind text CHECK (kind IN ('benchmark', 'expert_panel', 'other'));

ALTER TABLE ms_gate_inputs DROP CONSTRAINT ms_gate_inputs_source_check;
ALTER TABLE ms_gate_inputs ADD CONSTRAINT ms_gate_inputs_source_check
    CHECK (source IN ('entered', 'evidence', 'imported', 'expert_panel', 'integration'));
