-- Gate outcomes are stored, not only acted on when GateDecided arrives: a team's tranche at
-- a gate it has already passed (an offer accepted after the gate, or a release refused while
-- the team supplied GPUs) is released by the sweeper whenever it finds one open.
CREATE TABLE gpu_gate_passes (
    gate_id       UUID NOT NULL,
    gate          TEXT NOT NULL,
    consortium_id UUID NOT NULL,
    decided_at    TIMESTAMPTZ NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (gate_id, consortium_id)
);
CREATE INDEX gpu_gate_passes_by_gate ON gpu_gate_passes (gate, consortium_id);
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_gate_passes
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_gate_passes
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
SELECT kaip_audit_table('gpu_gate_passes');
