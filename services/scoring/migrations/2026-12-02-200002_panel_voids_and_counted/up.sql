-- A panel assignment voided by staff (a reviewer who cannot score), with who, when and why:
-- it no longer counts at the close and assigning again tops its team up. Once per
-- assignment; the assignment's row itself is never changed.
CREATE TABLE gate_panel_assignment_voids (
    assignment_id uuid PRIMARY KEY REFERENCES gate_panel_assignments (id),
    reason        text NOT NULL,
    voided_by     text NOT NULL,
    voided_at     timestamptz NOT NULL DEFAULT now()
);

-- The sheets a closed panel counted (each assignment's version), written in the closing
-- transaction: a result can be recomputed from its records whatever is declared later.
CREATE TABLE gate_panel_counted (
    panel_id      uuid NOT NULL REFERENCES gate_panel_closures (panel_id),
    assignment_id uuid NOT NULL REFERENCES gate_panel_assignments (id),
    consortium_id uuid NOT NULL,
    version       integer NOT NULL,
    PRIMARY KEY (panel_id, assignment_id),
    FOREIGN KEY (assignment_id, version) REFERENCES gate_panel_sheets (assignment_id, version)
);

SELECT kaip_audit_table('gate_panel_assignment_voids');
SELECT kaip_audit_table('gate_panel_counted');
