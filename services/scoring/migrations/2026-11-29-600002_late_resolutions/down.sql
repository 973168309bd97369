ALTER TABLE evaluation_cases DROP CONSTRAINT evaluation_cases_late_resolution_check;
UPDATE evaluation_cases SET status = 'late' WHERE status = 'rejected_late';
ALTER TABLE evaluation_cases DROP CONSTRAINT evaluation_cases_status_check;
ALTER TABLE evaluation_cases
    ADD CONSTRAINT evaluation_cases_status_check
        CHECK (status IN ('open', 'withdrawn', 'eliminated', 'finalist', 'selected', 'not_selected', 'late'));
ALTER TABLE evaluation_cases
    DROP COLUMN late_resolution,
    DROP COLUMN late_resolved_by,
    DROP COLUMN late_resolved_at;
