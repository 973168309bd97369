-- Gate panels, continued (issue #11):
-- - a panel may be voided (a new row: who, when, why) and a new one created for its gate,
--   so the gate key is no longer unique by itself: one panel per gate that is not voided,
--   which create checks under a transaction-scoped advisory lock on the key;
-- - a panel's teams may come from replacement calls too (their selected winners);
-- - the gates milestones defined (`GateDefined`) and the teams it eliminated
--   (`TeamEliminated`), so a panel names a known gate and leaves eliminated teams out.
ALTER TABLE gate_panels DROP CONSTRAINT gate_panels_gate_key;
CREATE INDEX gate_panels_gate ON gate_panels (gate);
ALTER TABLE gate_panels ADD COLUMN replacement_calls uuid[] NOT NULL DEFAULT '{}';

CREATE TABLE gate_panel_voids (
    panel_id  uuid PRIMARY KEY REFERENCES gate_panels (id),
    reason    text NOT NULL,
    voided_by text NOT NULL,
    voided_at timestamptz NOT NULL
);

CREATE TABLE known_gates (
    gate       text PRIMARY KEY,
    gate_id    uuid NOT NULL,
    phase      integer NOT NULL,
    gate_date  date NOT NULL,
    defined_at timestamptz NOT NULL
);

CREATE TABLE eliminated_teams (
    consortium_id uuid NOT NULL,
    gate          text NOT NULL,
    gate_id       uuid NOT NULL,
    reason        text NOT NULL,
    decided_at    timestamptz NOT NULL,
    PRIMARY KEY (consortium_id, gate_id)
);

SELECT kaip_audit_table('gate_panel_voids');
SELECT kaip_audit_table('known_gates');
SELECT kaip_audit_table('eliminated_teams');
