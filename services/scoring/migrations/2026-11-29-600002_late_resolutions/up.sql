-- A case marked `late` (its submission reached scoring after stage 0 closed) is resolved by
-- staff once: rejected as late, with the reason the consortium reads, who and when. The
-- resolution is written once (only a `late` case takes one) and never changed.
ALTER TABLE evaluation_cases
    ADD COLUMN late_resolution   TEXT,
    ADD COLUMN late_resolved_by  TEXT,
    ADD COLUMN late_resolved_at  TIMESTAMPTZ;
ALTER TABLE evaluation_cases DROP CONSTRAINT evaluation_cases_status_check;
ALTER TABLE evaluation_cases
    ADD CONSTRAINT evaluation_cases_status_check
        CHECK (status IN ('open', 'withdrawn', 'eliminated', 'finalist', 'selected', 'not_selected', 'late', 'rejected_late'));
-- A rejection always carries its reason, who and when.
ALTER TABLE evaluation_cases
    ADD CONSTRAINT evaluation_cases_late_resolution_check
        CHECK ((status = 'rejected_late') = (late_resolution IS NOT NULL AND late_resolved_by IS NOT NULL AND late_resolved_at IS NOT NULL));
