-- Issue #10, hostile review.

-- A hire ended by the team or an officer on a day later than the last day of its team's
-- elimination month gets a second end record, at that day, by the elimination: the first
-- one is never changed (a decision is not overwritten), and the earliest end counts. At
-- most one end per cause and hire.
ALTER TABLE talent_hire_ends DROP CONSTRAINT talent_hire_ends_pkey;
ALTER TABLE talent_hire_ends ADD PRIMARY KEY (hire_id, cause);
-- The trail's trigger names the key: set again (the reason stays "[personal data]").
SELECT kaip_audit_table('talent_hire_ends', '{}', ARRAY['reason']);

-- Why a team declined a proposed researcher is free text about that person: recorded in
-- the audit trail as "[personal data]" (who declined which proposal, and when, stays).
SELECT kaip_audit_table('talent_match_answers', '{}', ARRAY['reason']);
