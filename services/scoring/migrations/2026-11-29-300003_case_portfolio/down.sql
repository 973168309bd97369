ALTER TABLE evaluation_cases DROP COLUMN portfolio;
