DROP TABLE refused_withdrawals;
ALTER TABLE assignments DROP CONSTRAINT assignments_void_complete,
    DROP COLUMN voided_at, DROP COLUMN voided_by, DROP COLUMN void_reason;
ALTER TABLE evaluation_cases DROP CONSTRAINT evaluation_cases_status_check;
ALTER TABLE evaluation_cases
    ADD CONSTRAINT evaluation_cases_status_check
        CHECK (status IN ('open', 'withdrawn', 'eliminated', 'finalist', 'selected', 'not_selected'));
