-- Competition-phase rules (issue #7, evaluation side).

-- A case whose submission reached scoring after stage 0 had closed: intake accepted it in
-- time, but it cannot be reviewed with its peers; staff see it and decide.
ALTER TABLE evaluation_cases DROP CONSTRAINT evaluation_cases_status_check;
ALTER TABLE evaluation_cases
    ADD CONSTRAINT evaluation_cases_status_check
        CHECK (status IN ('open', 'withdrawn', 'eliminated', 'finalist', 'selected', 'not_selected', 'late'));

-- An assignment a late conflict of interest voids is kept, with its sheet, and says why, who
-- and when. Void assignments count for nothing: not in consensus, not visible to the reviewer.
ALTER TABLE assignments
    ADD COLUMN voided_at TIMESTAMPTZ,
    ADD COLUMN voided_by TEXT,
    ADD COLUMN void_reason TEXT,
    ADD CONSTRAINT assignments_void_complete CHECK (
        (voided_at IS NULL AND voided_by IS NULL AND void_reason IS NULL)
        OR (voided_at IS NOT NULL AND voided_by IS NOT NULL AND void_reason IS NOT NULL)
    );

-- A withdrawal that reached scoring after the decision was published: refused, kept.
CREATE TABLE refused_withdrawals (
    event_id     UUID PRIMARY KEY,
    proposal_id  UUID NOT NULL,
    call_id      UUID NOT NULL,
    reason       TEXT NOT NULL,
    refused_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
