-- Gate panels, review fixes (issue #11):
-- - whether a gate has an `expert_panel` component (GateDefined's `expert_panel`; NULL for a
--   gate learnt before the event carried it), so a panel is not made for a gate that cannot
--   record its scores;
-- - the gates milestones has decided (GateDecided, or any TeamEliminated), so no panel is
--   made for a gate whose decision is published (milestones would refuse every score).
ALTER TABLE known_gates ADD COLUMN expert_panel boolean;

CREATE TABLE decided_known_gates (
    gate       text PRIMARY KEY,
    gate_id    uuid NOT NULL,
    decided_at timestamptz NOT NULL
);

SELECT kaip_audit_table('decided_known_gates');
