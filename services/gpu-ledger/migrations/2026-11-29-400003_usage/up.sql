-- GPU-hours used, as GPU operators report them. A report is a record (immutable); the
-- client's id makes a retry harmless. Each keeps what the team had used before it and what
-- it was granted then, so an overrun stays explained.
CREATE TABLE gpu_usage_reports (
    id uuid PRIMARY KEY,
    consortium_id uuid NOT NULL,
    model text NOT NULL REFERENCES gpu_models (code),
    period text NOT NULL CHECK (period ~ '^2[0-9]{3}(H[12]|Q[1-4])?$'),
    gpu_hours bigint NOT NULL CHECK (gpu_hours > 0),
    used_before bigint NOT NULL CHECK (used_before >= 0),
    granted_hours bigint NOT NULL CHECK (granted_hours >= 0),
    overrun boolean NOT NULL,
    note text NOT NULL,
    reported_by text NOT NULL,
    reported_role text NOT NULL,
    reported_at timestamptz NOT NULL
);
CREATE INDEX gpu_usage_reports_by_team ON gpu_usage_reports (consortium_id, model, period, reported_at);
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_usage_reports
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
