-- A replacement call's link to its gate, places, committee and award (from `CallOpened`).
ALTER TABLE calls ADD COLUMN replaces JSONB;

-- The committee's votes on a replacement call's proposed selection: one per member and
-- decision version, never changed (a new proposal is a new version, voted on afresh).
CREATE TABLE committee_votes (
    id          UUID PRIMARY KEY,
    call_id     UUID NOT NULL REFERENCES calls (id),
    version     INT NOT NULL,
    voter       TEXT NOT NULL,
    approve     BOOLEAN NOT NULL,
    reason      TEXT NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 2000),
    voted_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (call_id, version, voter)
);
SELECT kaip_audit_table('committee_votes');
CREATE TRIGGER committee_votes_append_only BEFORE UPDATE OR DELETE ON committee_votes
    FOR EACH ROW EXECUTE FUNCTION scoring_refuse_decision_change();
