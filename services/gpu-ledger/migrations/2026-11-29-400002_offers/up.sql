-- Offers and tranches. Every row is a record (immutable); where an offer or a tranche
-- stands is derived from the ledger: whether its pending transfer is posted, voided or
-- expired.

-- The teams a published selection named, with what they asked for (from scoring's
-- SelectionPublished).
CREATE TABLE gpu_teams (
    call_id uuid NOT NULL,
    consortium_id uuid NOT NULL,
    proposal_id uuid NOT NULL,
    consortium_name text NOT NULL,
    title text NOT NULL,
    requested jsonb NOT NULL,
    selected_at timestamptz NOT NULL,
    PRIMARY KEY (call_id, consortium_id)
);

CREATE TABLE gpu_offers (
    id uuid PRIMARY KEY,
    consortium_id uuid NOT NULL,
    call_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    h100_eq bigint NOT NULL CHECK (h100_eq > 0),
    options jsonb NOT NULL,
    made_by text NOT NULL,
    made_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    FOREIGN KEY (call_id, consortium_id) REFERENCES gpu_teams (call_id, consortium_id)
);
CREATE INDEX gpu_offers_by_team ON gpu_offers (consortium_id, made_at);

-- Each tranche of each option, and the pending transfer that reserves it while the offer
-- is open.
CREATE TABLE gpu_offer_reservations (
    offer_id uuid NOT NULL REFERENCES gpu_offers (id),
    option_index int NOT NULL,
    tranche_index int NOT NULL,
    model text NOT NULL,
    period text NOT NULL,
    count bigint NOT NULL CHECK (count > 0),
    release_at timestamptz,
    release_gate text,
    transfer_id uuid NOT NULL UNIQUE REFERENCES ledger_transfers (id),
    PRIMARY KEY (offer_id, option_index, tranche_index)
);

-- The team's choice: once per offer.
CREATE TABLE gpu_offer_acceptances (
    offer_id uuid PRIMARY KEY REFERENCES gpu_offers (id),
    option_index int NOT NULL,
    accepted_by text NOT NULL,
    accepted_role text NOT NULL,
    accepted_at timestamptz NOT NULL,
    reason text NOT NULL
);

-- The accepted option's tranches: the transfer that holds each (the offer's pending
-- transfer, posted at acceptance when due, or a reservation without timeout that is
-- posted when the tranche is released, or voided when the team is eliminated).
CREATE TABLE gpu_tranches (
    offer_id uuid NOT NULL REFERENCES gpu_offer_acceptances (offer_id),
    tranche_index int NOT NULL,
    consortium_id uuid NOT NULL,
    model text NOT NULL,
    period text NOT NULL,
    count bigint NOT NULL CHECK (count > 0),
    release_at timestamptz,
    release_gate text,
    transfer_id uuid NOT NULL UNIQUE REFERENCES ledger_transfers (id),
    PRIMARY KEY (offer_id, tranche_index)
);
CREATE INDEX gpu_tranches_by_team ON gpu_tranches (consortium_id);
CREATE INDEX gpu_tranches_by_gate ON gpu_tranches (release_gate) WHERE release_gate IS NOT NULL;
CREATE INDEX gpu_tranches_by_date ON gpu_tranches (release_at) WHERE release_at IS NOT NULL;

-- Eliminations applied (once per team and gate).
CREATE TABLE gpu_eliminations (
    gate_id uuid NOT NULL,
    consortium_id uuid NOT NULL,
    gate text NOT NULL,
    reason text NOT NULL,
    plan jsonb NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (gate_id, consortium_id)
);

CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_offers
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_offer_reservations
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_offer_acceptances
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_tranches
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON gpu_eliminations
    FOR EACH ROW EXECUTE FUNCTION gpu_ledger_refuse_change();
