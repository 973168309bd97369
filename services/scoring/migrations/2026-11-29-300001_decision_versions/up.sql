-- Officer decisions keep every version: each proposed selection, override and publication
-- is its own row with who, when and why, and "the current decision" is the latest row.
-- `decisions` (one row per call, overwritten) is superseded: its rows are carried over as
-- version 1 (and 2 when published) and it is no longer written.

CREATE TABLE decision_versions (
    call_id            UUID NOT NULL REFERENCES calls (id),
    version            INTEGER NOT NULL CHECK (version >= 1),
    kind               TEXT NOT NULL CHECK (kind IN ('proposed', 'override', 'published')),
    selected           JSONB NOT NULL,
    total_centi        BIGINT NOT NULL,
    departure          JSONB,
    override_reason    TEXT,
    -- What an override departs from by the officer's explicit choice (`teams`,
    -- `at_least:<category>`, `at_most:<category>`).
    waivers            JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- Computed from the decision itself, never free text.
    explanation        JSONB NOT NULL DEFAULT '[]'::jsonb,
    decided_by         TEXT NOT NULL,
    decided_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- For a publication: the version it made final, and the SHA-256 of the recorded inputs
    -- (settings, sheets, tie decisions) it was computed from.
    publishes_version  INTEGER,
    inputs_sha256      TEXT,
    PRIMARY KEY (call_id, version),
    CHECK ((kind = 'published') = (publishes_version IS NOT NULL)),
    CHECK ((kind = 'override') = (override_reason IS NOT NULL) OR kind = 'published')
);
-- At most one publication per call, whatever the races.
CREATE UNIQUE INDEX decision_versions_one_publication
    ON decision_versions (call_id) WHERE kind = 'published';

INSERT INTO decision_versions (call_id, version, kind, selected, total_centi, departure,
                               override_reason, decided_by, decided_at)
SELECT call_id, 1, CASE WHEN override_reason IS NULL THEN 'proposed' ELSE 'override' END,
       selected, total_centi, departure, override_reason, decided_by, decided_at
FROM decisions;
INSERT INTO decision_versions (call_id, version, kind, selected, total_centi, departure,
                               override_reason, decided_by, decided_at, publishes_version)
SELECT call_id, 2, 'published', selected, total_centi, departure, override_reason,
       'unknown (published before publishers were recorded)', published_at, 1
FROM decisions WHERE published_at IS NOT NULL;

-- Officers' orders for ties the declared rules leave, per stage: appended, never changed.
CREATE TABLE tie_decisions (
    id          UUID PRIMARY KEY,
    call_id     UUID NOT NULL REFERENCES calls (id),
    stage       INTEGER NOT NULL,
    -- Proposal ids, best first.
    proposals   JSONB NOT NULL,
    reason      TEXT NOT NULL,
    decided_by  TEXT NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tie_decisions_call_stage ON tie_decisions (call_id, stage, decided_at);

-- A result's unresolved tie: the other proposals nothing separated from it.
ALTER TABLE stage_results ADD COLUMN unresolved_with JSONB NOT NULL DEFAULT '[]'::jsonb;

-- Decisions are append-only, whatever the code does.
CREATE FUNCTION scoring_refuse_decision_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER decision_versions_append_only BEFORE UPDATE OR DELETE ON decision_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_refuse_decision_change();
CREATE TRIGGER tie_decisions_append_only BEFORE UPDATE OR DELETE ON tie_decisions
    FOR EACH ROW EXECUTE FUNCTION scoring_refuse_decision_change();
