-- The GPU grant ledger. Transfers and every record of a decision are append-only: a
-- trigger refuses UPDATE, DELETE and TRUNCATE on them, so not even a bug (or a hurried
-- operator with psql) can rewrite what the ministry must defend. Accounts carry running
-- totals updated in the same transaction as the transfers, under row locks; CHECK
-- constraints repeat the limits so that a breach could never commit.

CREATE FUNCTION gpu_ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gpu-ledger: % on % refused: ledger records are immutable (a correction is a new record)',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

-- The catalogue: models and their H100-equivalence factor, versioned (the current factor is
-- the latest row; a change is a new row with who, when and why).
CREATE TABLE gpu_models (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z][A-Z0-9-]{0,15}$'),
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gpu_model_factors (
    seq bigserial PRIMARY KEY,
    model text NOT NULL REFERENCES gpu_models (code),
    h100_factor bigint NOT NULL CHECK (h100_factor BETWEEN 1 AND 64),
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL,
    reason text NOT NULL
);
CREATE INDEX gpu_model_factors_by_model ON gpu_model_factors (model, seq DESC);

INSERT INTO gpu_models (code, name) VALUES ('H100', 'NVIDIA H100'), ('B200', 'NVIDIA B200');
INSERT INTO gpu_model_factors (model, h100_factor, recorded_by, recorded_at, reason) VALUES
    ('H100', 1, 'seed:programme', now(), 'the unit of account'),
    ('B200', 2, 'seed:programme', now(), 'programme rule: 1 B200 = 2 H100-equivalents');

-- Accounts: one pool per (model, period); sources (leases, government-owned hardware) feed
-- it; grants and usage belong to a consortium.
CREATE TABLE ledger_accounts (
    id uuid PRIMARY KEY,
    model text NOT NULL REFERENCES gpu_models (code),
    period text NOT NULL CHECK (period ~ '^2[0-9]{3}(H[12]|Q[1-4])?$'),
    kind text NOT NULL CHECK (kind IN ('source', 'pool', 'grant', 'usage')),
    consortium_id uuid,
    source_type text CHECK (source_type IN ('leased', 'government')),
    phase text,
    name text NOT NULL,
    debits_must_not_exceed_credits boolean NOT NULL,
    credits_must_not_exceed_debits boolean NOT NULL,
    debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    reason text NOT NULL,
    CONSTRAINT debits_must_not_exceed_credits CHECK (
        NOT debits_must_not_exceed_credits
        OR debits_pending::numeric + debits_posted <= credits_posted),
    CONSTRAINT credits_must_not_exceed_debits CHECK (
        NOT credits_must_not_exceed_debits
        OR credits_pending::numeric + credits_posted <= debits_posted),
    CONSTRAINT team_accounts_have_a_team CHECK (
        (kind IN ('grant', 'usage')) = (consortium_id IS NOT NULL)),
    CONSTRAINT sources_have_a_type CHECK ((kind = 'source') = (source_type IS NOT NULL))
);
CREATE UNIQUE INDEX ledger_accounts_one_pool ON ledger_accounts (model, period) WHERE kind = 'pool';
CREATE UNIQUE INDEX ledger_accounts_one_team_account
    ON ledger_accounts (model, period, kind, consortium_id) WHERE consortium_id IS NOT NULL;
CREATE INDEX ledger_accounts_by_consortium ON ledger_accounts (consortium_id);

CREATE TABLE ledger_transfers (
    seq bigserial NOT NULL UNIQUE,
    id uuid PRIMARY KEY,
    debit_account_id uuid NOT NULL REFERENCES ledger_accounts (id),
    credit_account_id uuid NOT NULL REFERENCES ledger_accounts (id),
    amount bigint NOT NULL CHECK (amount >= 0),
    kind text NOT NULL CHECK (kind IN ('single', 'pending', 'post', 'void', 'expire')),
    pending_id uuid REFERENCES ledger_transfers (id),
    timeout_at timestamptz,
    linked boolean NOT NULL,
    code text NOT NULL CHECK (code ~ '^[a-z0-9_]{1,32}$'),
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    created_by text NOT NULL,
    created_role text NOT NULL,
    created_at timestamptz NOT NULL,
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((kind IN ('post', 'void', 'expire')) = (pending_id IS NOT NULL)),
    CHECK (timeout_at IS NULL OR kind = 'pending')
);
-- A pending transfer is resolved (posted, voided or expired) at most once.
CREATE UNIQUE INDEX ledger_transfers_resolved_once ON ledger_transfers (pending_id)
    WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_by_debit ON ledger_transfers (debit_account_id, seq);
CREATE INDEX ledger_transfers_by_credit ON ledger_transfers (credit_account_id, seq);
CREATE INDEX ledger_transfers_by_time ON ledger_transfers (created_at, seq);
CREATE INDEX ledger_transfers_timeouts ON ledger_transfers (timeout_at)
    WHERE kind = 'pending' AND timeout_at IS NOT NULL;

-- Each account's totals after each batch that touched it: balances as of any past time.
CREATE TABLE ledger_balance_history (
    account_id uuid NOT NULL REFERENCES ledger_accounts (id),
    transfer_seq bigint NOT NULL,
    at timestamptz NOT NULL,
    debits_pending bigint NOT NULL,
    debits_posted bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted bigint NOT NULL,
    PRIMARY KEY (account_id, transfer_seq)
);
CREATE INDEX ledger_balance_history_as_of ON ledger_balance_history (account_id, at DESC, transfer_seq DESC);

-- The supplier rule: a consortium recorded as supplying GPUs to the programme receives no
-- grant while it supplies. Each start and end is a record; the current state is the latest.
CREATE TABLE gpu_supplier_records (
    seq bigserial PRIMARY KEY,
    consortium_id uuid NOT NULL,
    supplying boolean NOT NULL,
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (btrim(reason) <> '')
);
CREATE INDEX gpu_supplier_records_latest ON gpu_supplier_records (consortium_id, seq DESC);

CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON ledger_balance_history
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON ledger_balance_history
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_model_factors
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_supplier_records
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
-- Accounts' totals change (under row locks, with the transfers); what they are, never.
CREATE FUNCTION gpu_ledger_account_identity_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (NEW.id, NEW.model, NEW.period, NEW.kind, NEW.consortium_id,
            NEW.source_type, NEW.phase, NEW.name, NEW.debits_must_not_exceed_credits,
            NEW.credits_must_not_exceed_debits, NEW.created_by, NEW.created_at, NEW.reason)
        IS DISTINCT FROM (OLD.id, OLD.model, OLD.period, OLD.kind, OLD.consortium_id,
            OLD.source_type, OLD.phase, OLD.name, OLD.debits_must_not_exceed_credits,
            OLD.credits_must_not_exceed_debits, OLD.created_by, OLD.created_at, OLD.reason) THEN
        RAISE EXCEPTION 'gpu-ledger: % on ledger_accounts refused: only the running totals change',
            TG_OP USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER identity_fixed BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_account_identity_fixed();
