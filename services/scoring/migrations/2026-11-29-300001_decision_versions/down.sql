DROP TABLE tie_decisions;
DROP TABLE decision_versions;
DROP FUNCTION scoring_refuse_decision_change();
ALTER TABLE stage_results DROP COLUMN unresolved_with;
