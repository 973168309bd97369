-- Every withdrawal a consortium made is a row, never overwritten: the columns on
-- `proposals` hold the latest for the readers that want only that one.
CREATE TABLE proposal_withdrawals (
    id            BIGSERIAL PRIMARY KEY,
    proposal_id   UUID NOT NULL REFERENCES proposals (id),
    reason        TEXT NOT NULL,
    withdrawn_by  TEXT NOT NULL,
    withdrawn_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX proposal_withdrawals_by_proposal ON proposal_withdrawals (proposal_id, id);
INSERT INTO proposal_withdrawals (proposal_id, reason, withdrawn_by, withdrawn_at)
SELECT id, withdrawal_reason, coalesce(withdrawn_by, 'before-history'), withdrawn_at
FROM proposals WHERE withdrawn_at IS NOT NULL AND withdrawal_reason IS NOT NULL;
