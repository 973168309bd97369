DROP TABLE gpu_gate_passes;
