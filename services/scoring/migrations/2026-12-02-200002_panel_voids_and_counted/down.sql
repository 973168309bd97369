DROP TABLE gate_panel_counted;
DROP TABLE gate_panel_assignment_voids;
