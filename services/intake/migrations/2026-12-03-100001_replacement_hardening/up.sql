-- The teams each call selected (from `SelectionPublished`): a consortium selected in the
-- programme and not eliminated at any gate is a survivor, and holds a place a replacement
-- call may not give it twice. Rows are only inserted (a redelivery changes nothing).
CREATE TABLE selected_teams (
    call_id       UUID NOT NULL,
    consortium_id UUID NOT NULL,
    selected_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (call_id, consortium_id)
);
CREATE INDEX selected_teams_consortium ON selected_teams (consortium_id);
SELECT kaip_audit_table('selected_teams');

-- A replacement call an officer cancelled (it had no published selection): who, when, why.
-- A row, never a deletion; the call stays on record.
CREATE TABLE call_cancellations (
    call_id      UUID PRIMARY KEY REFERENCES calls (id),
    reason       TEXT NOT NULL CHECK (length(btrim(reason)) > 0),
    cancelled_by TEXT NOT NULL,
    cancelled_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
SELECT kaip_audit_table('call_cancellations');

-- Mirrors the cancellation on the call (set once, in the same transaction) so the partial
-- unique index frees the gate for a new replacement call.
ALTER TABLE calls ADD COLUMN cancelled_at TIMESTAMPTZ;
DROP INDEX calls_one_open_replacement;
CREATE UNIQUE INDEX calls_one_open_replacement ON calls (replaces_gate)
    WHERE replaces_gate IS NOT NULL AND decided_at IS NULL AND cancelled_at IS NULL;
