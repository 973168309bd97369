-- A proposal's portfolio declaration (track, openness, independence), kept with each
-- version like the rest of its content. Null for proposals drafted before it existed; a
-- submission requires it.
ALTER TABLE proposals ADD COLUMN portfolio JSONB;
ALTER TABLE proposal_versions ADD COLUMN portfolio JSONB;
