DROP TABLE gate_panel_results;
DROP TABLE gate_panel_closures;
DROP TABLE gate_panel_sheets;
DROP TABLE gate_panel_blocked;
DROP TABLE gate_panel_assignments;
DROP TABLE gate_panels;
