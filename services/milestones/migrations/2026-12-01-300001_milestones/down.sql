DROP TABLE IF EXISTS ms_decisions, ms_votes, ms_proposals, ms_eligibility, ms_gate_inputs,
    ms_gate_components, ms_gates, ms_overdue, ms_verdicts, ms_evidence, ms_deliverables,
    ms_teams;
DROP FUNCTION IF EXISTS ms_refuse_change();
