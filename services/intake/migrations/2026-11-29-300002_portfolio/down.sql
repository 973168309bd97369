ALTER TABLE proposal_versions DROP COLUMN portfolio;
ALTER TABLE proposals DROP COLUMN portfolio;
