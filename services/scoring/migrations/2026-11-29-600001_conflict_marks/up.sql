-- A conflict of interest that comes to light after a stage closed does not undo the stage
-- (its result stands), but the record must show it: the reviewer's closed-stage assignment
-- to that consortium is marked with the conflict, who recorded it and when.
ALTER TABLE assignments
    ADD COLUMN conflict_note      TEXT,
    ADD COLUMN conflict_noted_at  TIMESTAMPTZ,
    ADD COLUMN conflict_noted_by  TEXT;
