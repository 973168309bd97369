DROP TABLE appeals;
DROP TABLE decisions;
DROP TABLE stage_results;
DROP TABLE stage_closures;
DROP TABLE score_sheets;
DROP TABLE blocked_assignments;
DROP TABLE assignments;
DROP TABLE conflicts;
DROP TABLE reviewers;
ALTER TABLE evaluation_cases DROP COLUMN consortium_name, DROP COLUMN members, DROP COLUMN resources,
    DROP COLUMN stage, DROP COLUMN submitted_at;
ALTER TABLE evaluation_cases DROP CONSTRAINT evaluation_cases_status_check;
ALTER TABLE evaluation_cases ADD CONSTRAINT evaluation_cases_status_check CHECK (status IN ('open'));
DROP TABLE calls;
