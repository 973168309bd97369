-- Gates as milestones decided them (from `GateDecided`): a replacement call names one, and
-- may fill at most as many places as it eliminated. Rows are only inserted (a redelivery
-- changes nothing).
CREATE TABLE decided_gates (
    gate_id     UUID PRIMARY KEY,
    gate        TEXT NOT NULL,
    eliminated  JSONB NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL,
    learned_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX decided_gates_gate ON decided_gates (gate, decided_at DESC);
SELECT kaip_audit_table('decided_gates');

-- A replacement call's link to its gate (places, committee, award), as announced.
ALTER TABLE calls ADD COLUMN replaces JSONB;
ALTER TABLE calls ADD COLUMN replaces_gate TEXT;
-- One open (undecided) replacement call per gate: two officers opening one at once cannot
-- both succeed.
CREATE UNIQUE INDEX calls_one_open_replacement ON calls (replaces_gate)
    WHERE replaces_gate IS NOT NULL AND decided_at IS NULL;
-- How many teams a decided call selected (from `SelectionPublished`): the places a gate
-- freed that earlier replacement calls filled are not offered again.
ALTER TABLE calls ADD COLUMN filled INT;
