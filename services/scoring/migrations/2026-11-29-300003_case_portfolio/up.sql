-- The portfolio declaration (track, openness, independence) a proposal was submitted with,
-- from ProposalSubmitted: slot constraints can name the track, and the stage gates'
-- eligibility verdicts read the independence declaration.
ALTER TABLE evaluation_cases ADD COLUMN portfolio JSONB;
