-- The data budget. Every row is a record: nothing is updated or deleted (triggers refuse
-- it); a cap adjustment, a cancellation or a new programme setting is a new row, and every
-- figure (committed, invoiced, paid, available) is derived from the records.

CREATE FUNCTION data_budget_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'data-budget records are immutable: % on % refused (record a correction instead)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END $$;

-- The programme's configuration, one version per row; the current one is the latest.
CREATE TABLE budget_programme_settings (
    seq bigserial PRIMARY KEY,
    max_cap_krw bigint NOT NULL CHECK (max_cap_krw > 0),
    joint_purchase_limit_krw bigint NOT NULL CHECK (joint_purchase_limit_krw > 0),
    building_processing_limit_krw bigint NOT NULL CHECK (building_processing_limit_krw > 0),
    carry_over boolean NOT NULL,
    first_year int NOT NULL,
    last_year int NOT NULL CHECK (last_year >= first_year),
    set_by text NOT NULL,
    set_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (btrim(reason) <> '')
);
-- The seeded programme: KRW 15bn per team-year, joint purchase ~10bn, building and
-- processing up to 5bn, no carry-over, fiscal years 2026-2030.
INSERT INTO budget_programme_settings
    (max_cap_krw, joint_purchase_limit_krw, building_processing_limit_krw, carry_over,
     first_year, last_year, set_by, set_at, reason)
VALUES (15000000000, 10000000000, 5000000000, false, 2026, 2030, 'service:data-budget', now(),
        'the programme''s defaults');

-- The teams a published selection named (from scoring's SelectionPublished).
CREATE TABLE budget_teams (
    consortium_id uuid PRIMARY KEY,
    call_id uuid NOT NULL,
    proposal_id uuid NOT NULL,
    consortium_name text NOT NULL,
    requested_krw bigint NOT NULL,
    selected_at timestamptz NOT NULL
);

-- One budget per team and fiscal year. Its row is the lock every commitment of the team
-- takes (SELECT ... FOR UPDATE, in (consortium_id, fiscal_year) order).
CREATE TABLE budgets (
    consortium_id uuid NOT NULL REFERENCES budget_teams (consortium_id),
    fiscal_year int NOT NULL,
    call_id uuid NOT NULL,
    opened_at timestamptz NOT NULL,
    PRIMARY KEY (consortium_id, fiscal_year)
);

-- The cap of a team-year, one version per row: the opening one, then officers' adjustments.
CREATE TABLE budget_caps (
    seq bigserial PRIMARY KEY,
    consortium_id uuid NOT NULL,
    fiscal_year int NOT NULL,
    cap_krw bigint NOT NULL CHECK (cap_krw > 0),
    joint_purchase_limit_krw bigint NOT NULL CHECK (joint_purchase_limit_krw > 0 AND joint_purchase_limit_krw <= cap_krw),
    building_processing_limit_krw bigint NOT NULL CHECK (building_processing_limit_krw > 0 AND building_processing_limit_krw <= cap_krw),
    set_by text NOT NULL,
    set_role text NOT NULL,
    set_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    FOREIGN KEY (consortium_id, fiscal_year) REFERENCES budgets (consortium_id, fiscal_year)
);
CREATE INDEX budget_caps_by_budget ON budget_caps (consortium_id, fiscal_year, seq);

CREATE TABLE datasets (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (btrim(name) <> ''),
    provider text NOT NULL CHECK (btrim(provider) <> ''),
    licence_terms text NOT NULL CHECK (btrim(licence_terms) <> ''),
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL
);

CREATE TABLE budget_joint_purchases (
    id uuid PRIMARY KEY,
    dataset_id uuid NOT NULL REFERENCES datasets (id),
    fiscal_year int NOT NULL,
    total_krw bigint NOT NULL CHECK (total_krw > 0),
    split_rule text NOT NULL CHECK (split_rule IN ('equal', 'weighted', 'explicit')),
    request jsonb NOT NULL,
    made_by text NOT NULL,
    made_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (btrim(reason) <> '')
);

-- A commitment (purchase order) reserves budget in one category of one team-year.
CREATE TABLE budget_commitments (
    id uuid PRIMARY KEY,
    consortium_id uuid NOT NULL,
    fiscal_year int NOT NULL,
    category text NOT NULL CHECK (category IN ('joint_purchase', 'building_processing')),
    amount_krw bigint NOT NULL CHECK (amount_krw > 0),
    dataset_id uuid REFERENCES datasets (id),
    joint_purchase_id uuid REFERENCES budget_joint_purchases (id),
    joint_weight bigint,
    made_by text NOT NULL,
    made_role text NOT NULL,
    made_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    FOREIGN KEY (consortium_id, fiscal_year) REFERENCES budgets (consortium_id, fiscal_year)
);
CREATE INDEX budget_commitments_by_budget ON budget_commitments (consortium_id, fiscal_year);
CREATE INDEX budget_commitments_by_joint ON budget_commitments (joint_purchase_id) WHERE joint_purchase_id IS NOT NULL;

-- Releases what a commitment had not invoiced (once per commitment).
CREATE TABLE budget_cancellations (
    commitment_id uuid PRIMARY KEY REFERENCES budget_commitments (id),
    released_krw bigint NOT NULL CHECK (released_krw > 0),
    cancelled_by text NOT NULL,
    cancelled_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (btrim(reason) <> '')
);

CREATE TABLE budget_invoices (
    id uuid PRIMARY KEY,
    commitment_id uuid NOT NULL REFERENCES budget_commitments (id),
    amount_krw bigint NOT NULL CHECK (amount_krw > 0),
    invoice_no text NOT NULL CHECK (btrim(invoice_no) <> ''),
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX budget_invoices_by_commitment ON budget_invoices (commitment_id);

-- Payments confirmed by the finance system, once per finance's own key.
CREATE TABLE budget_payments (
    external_key text PRIMARY KEY CHECK (btrim(external_key) <> ''),
    invoice_id uuid NOT NULL REFERENCES budget_invoices (id),
    amount_krw bigint NOT NULL CHECK (amount_krw > 0),
    paid_at timestamptz NOT NULL,
    confirmed_by text NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX budget_payments_by_invoice ON budget_payments (invoice_id);

-- Eliminations at stage gates (from milestones): the team commits nothing new.
CREATE TABLE budget_eliminations (
    gate_id uuid NOT NULL,
    consortium_id uuid NOT NULL,
    gate text NOT NULL,
    reason text NOT NULL,
    decided_at timestamptz NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (gate_id, consortium_id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['budget_programme_settings', 'budget_teams', 'budgets',
        'budget_caps', 'datasets', 'budget_joint_purchases', 'budget_commitments',
        'budget_cancellations', 'budget_invoices', 'budget_payments', 'budget_eliminations']
    LOOP
        EXECUTE format('CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON %I
            FOR EACH ROW EXECUTE FUNCTION data_budget_refuse_change()', t);
        EXECUTE format('CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION data_budget_refuse_change()', t);
        PERFORM kaip_audit_table(t);
    END LOOP;
END $$;
