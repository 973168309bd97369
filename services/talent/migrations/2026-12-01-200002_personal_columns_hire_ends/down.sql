DROP TABLE talent_hire_ends;
SELECT kaip_audit_table('talent_researchers');
ALTER TABLE talent_researcher_personal ADD COLUMN country text NOT NULL DEFAULT '';
ALTER TABLE talent_researcher_personal ALTER COLUMN country DROP DEFAULT;
