ALTER TABLE assignments
    DROP COLUMN conflict_note,
    DROP COLUMN conflict_noted_at,
    DROP COLUMN conflict_noted_by;
