-- A replacement award the ledger could not offer when the selection arrived (the pool
-- missing or short): the refusal, kept so staff see the award is still owed. Only
-- inserted (one per call and team: the first refusal); never retried automatically.
-- Whether it is still owed is derived: no offer for the call and team exists yet.
CREATE TABLE gpu_award_refusals (
    call_id       UUID NOT NULL,
    consortium_id UUID NOT NULL,
    model         TEXT NOT NULL,
    period        TEXT NOT NULL,
    count         BIGINT NOT NULL,
    code          TEXT NOT NULL,
    message       TEXT NOT NULL,
    refused_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, consortium_id)
);
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_award_refusals
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_award_refusals
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
SELECT kaip_audit_table('gpu_award_refusals');
