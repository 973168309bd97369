-- The milestones service: selected teams, plans of deliverables, versioned evidence,
-- review verdicts, overdue flags, and stage gates (definition, inputs, eligibility
-- verdicts, proposals, committee votes, the published decision).
-- Nothing here is updated or deleted by the service: a correction is a new row, and
-- "the current one" is the latest row (by seq).

-- Selected teams (scoring's SelectionPublished), with the call that selected them.
CREATE TABLE ms_teams (
    consortium_id   uuid PRIMARY KEY,
    call_id         uuid NOT NULL,
    proposal_id     uuid NOT NULL,
    consortium_name text NOT NULL,
    selected_at     timestamptz NOT NULL
);

-- A deliverable of a team's plan for a phase, set by an officer.
CREATE TABLE ms_deliverables (
    id                  uuid PRIMARY KEY,
    consortium_id       uuid NOT NULL REFERENCES ms_teams (consortium_id),
    phase               integer NOT NULL CHECK (phase BETWEEN 1 AND 100),
    title               text NOT NULL CHECK (length(btrim(title)) > 0),
    description         text NOT NULL,
    acceptance_criteria text NOT NULL CHECK (length(btrim(acceptance_criteria)) > 0),
    due_date            date NOT NULL,
    created_by          text NOT NULL,
    created_role        text NOT NULL,
    created_at          timestamptz NOT NULL
);
CREATE INDEX ms_deliverables_team ON ms_deliverables (consortium_id, phase);

-- Evidence: each submission a new version of the deliverable's evidence, never
-- overwritten. Benchmark values are exact decimals kept as an integer and a scale
-- (value = value_units / 10^scale).
CREATE TABLE ms_evidence (
    id             uuid PRIMARY KEY,
    deliverable_id uuid NOT NULL REFERENCES ms_deliverables (id),
    version        integer NOT NULL CHECK (version >= 1),
    kind           text NOT NULL CHECK (kind IN ('document', 'link', 'benchmark')),
    note           text NOT NULL,
    doc_name       text,
    doc_sha256     text CHECK (doc_sha256 ~ '^[0-9a-f]{64}$'),
    doc_size_bytes bigint CHECK (doc_size_bytes >= 0),
    url            text,
    benchmark      text,
    value_units    bigint,
    value_scale    integer CHECK (value_scale BETWEEN 0 AND 6),
    content_sha256 text NOT NULL,
    submitted_by   text NOT NULL,
    submitted_role text NOT NULL,
    submitted_at   timestamptz NOT NULL,
    UNIQUE (deliverable_id, version),
    CHECK (kind <> 'document' OR (doc_name IS NOT NULL AND doc_sha256 IS NOT NULL AND doc_size_bytes IS NOT NULL)),
    CHECK (kind <> 'link' OR url IS NOT NULL),
    CHECK (kind <> 'benchmark' OR (benchmark IS NOT NULL AND value_units IS NOT NULL AND value_scale IS NOT NULL))
);

-- Officers' verdicts on a deliverable, every one kept with its author and reason.
CREATE TABLE ms_verdicts (
    id               uuid PRIMARY KEY,
    seq              bigserial NOT NULL UNIQUE,
    deliverable_id   uuid NOT NULL REFERENCES ms_deliverables (id),
    verdict          text NOT NULL CHECK (verdict IN ('approved', 'revision', 'rejected')),
    evidence_version integer,
    reason           text NOT NULL CHECK (length(btrim(reason)) > 0),
    comments         text NOT NULL,
    new_due_date     date,
    decided_by       text NOT NULL,
    decided_role     text NOT NULL,
    decided_at       timestamptz NOT NULL,
    CHECK ((verdict = 'revision') = (new_due_date IS NOT NULL))
);
CREATE INDEX ms_verdicts_deliverable ON ms_verdicts (deliverable_id, seq);

-- Overdue flags: one per deliverable and due date (the key makes MilestoneOverdue once
-- even with two sweeping replicas).
CREATE TABLE ms_overdue (
    deliverable_id uuid NOT NULL REFERENCES ms_deliverables (id),
    due_date       date NOT NULL,
    flagged_at     timestamptz NOT NULL,
    PRIMARY KEY (deliverable_id, due_date)
);

-- A stage gate: one per key (`gate-1`), with its phase, date and planned eliminations.
CREATE TABLE ms_gates (
    id                   uuid PRIMARY KEY,
    key                  text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    phase                integer NOT NULL CHECK (phase BETWEEN 1 AND 100),
    gate_date            date NOT NULL,
    planned_eliminations integer NOT NULL CHECK (planned_eliminations >= 0),
    eligibility_rules    text[] NOT NULL,
    committee            text[] NOT NULL CHECK (cardinality(committee) >= 1),
    reason               text NOT NULL,
    created_by           text NOT NULL,
    created_role         text NOT NULL,
    created_at           timestamptz NOT NULL
);

-- A gate's weighted components (leaf weights sum to 100; `grp` groups sub-weights, e.g.
-- the three benchmarks under `benchmarks`).
CREATE TABLE ms_gate_components (
    gate_id       uuid NOT NULL REFERENCES ms_gates (id),
    key           text NOT NULL,
    grp           text NOT NULL,
    label         text NOT NULL,
    weight        integer NOT NULL CHECK (weight BETWEEN 1 AND 100),
    normalisation text NOT NULL CHECK (normalisation IN ('min_max', 'of_max')),
    max_units     bigint CHECK (max_units > 0),
    ord           integer NOT NULL,
    PRIMARY KEY (gate_id, key),
    CHECK ((normalisation = 'of_max') = (max_units IS NOT NULL))
);

-- Inputs per team and component, in ten-thousandths (value × 10^4); the latest counts,
-- every one kept with its source.
CREATE TABLE ms_gate_inputs (
    id            uuid PRIMARY KEY,
    seq           bigserial NOT NULL UNIQUE,
    gate_id       uuid NOT NULL REFERENCES ms_gates (id),
    consortium_id uuid NOT NULL REFERENCES ms_teams (consortium_id),
    component     text NOT NULL,
    value_e4      bigint NOT NULL CHECK (value_e4 >= 0),
    source        text NOT NULL CHECK (source IN ('entered', 'evidence', 'imported', 'expert_panel')),
    source_ref    text NOT NULL,
    reason        text NOT NULL CHECK (length(btrim(reason)) > 0),
    entered_by    text NOT NULL,
    entered_role  text NOT NULL,
    entered_at    timestamptz NOT NULL,
    FOREIGN KEY (gate_id, component) REFERENCES ms_gate_components (gate_id, key)
);
CREATE INDEX ms_gate_inputs_team ON ms_gate_inputs (gate_id, consortium_id, component, seq);

-- Eligibility verdicts per team and rule, with grounds; the latest counts.
CREATE TABLE ms_eligibility (
    id            uuid PRIMARY KEY,
    seq           bigserial NOT NULL UNIQUE,
    gate_id       uuid NOT NULL REFERENCES ms_gates (id),
    consortium_id uuid NOT NULL REFERENCES ms_teams (consortium_id),
    rule          text NOT NULL,
    eligible      boolean NOT NULL,
    grounds       text NOT NULL CHECK (length(btrim(grounds)) > 0),
    decided_by    text NOT NULL,
    decided_role  text NOT NULL,
    decided_at    timestamptz NOT NULL
);

-- A proposal: the computed outcome with every input it used (recomputable), immutable.
CREATE TABLE ms_proposals (
    id          uuid PRIMARY KEY,
    seq         bigserial NOT NULL UNIQUE,
    gate_id     uuid NOT NULL REFERENCES ms_gates (id),
    outcome     jsonb NOT NULL,
    proposed_by text NOT NULL,
    proposed_role text NOT NULL,
    proposed_at timestamptz NOT NULL
);

-- A committee member's vote on a proposal: one each.
CREATE TABLE ms_votes (
    proposal_id uuid NOT NULL REFERENCES ms_proposals (id),
    member      text NOT NULL,
    approve     boolean NOT NULL,
    reason      text NOT NULL CHECK (length(btrim(reason)) > 0),
    voted_at    timestamptz NOT NULL,
    PRIMARY KEY (proposal_id, member)
);

-- The published decision: one per gate, never overwritten.
CREATE TABLE ms_decisions (
    gate_id      uuid PRIMARY KEY REFERENCES ms_gates (id),
    proposal_id  uuid NOT NULL REFERENCES ms_proposals (id),
    passed       uuid[] NOT NULL,
    eliminated   jsonb NOT NULL,
    next_targets jsonb NOT NULL,
    approvals    integer NOT NULL,
    committee    integer NOT NULL,
    reason       text NOT NULL,
    decided_by   text NOT NULL,
    decided_role text NOT NULL,
    decided_at   timestamptz NOT NULL
);

-- Every row is a record: nothing is updated or deleted (the triggers refuse it, even to a
-- bug or a hand-written statement), and every table is in the audit trail.
CREATE FUNCTION ms_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'milestones records are immutable: % on % refused (record a new version instead)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ms_teams', 'ms_deliverables', 'ms_evidence', 'ms_verdicts',
        'ms_overdue', 'ms_gates', 'ms_gate_components', 'ms_gate_inputs', 'ms_eligibility',
        'ms_proposals', 'ms_votes', 'ms_decisions']
    LOOP
        EXECUTE format('CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON %I
            FOR EACH ROW EXECUTE FUNCTION ms_refuse_change()', t);
        EXECUTE format('CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION ms_refuse_change()', t);
        PERFORM kaip_audit_table(t);
    END LOOP;
END $$;
