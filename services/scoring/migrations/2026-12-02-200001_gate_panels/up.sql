-- Expert panels for stage gates: the reviewers, conflicts of interest and score sheets of
-- the proposal stages, applied to a gate's selected teams. Every row is a record: a sheet
-- resubmitted is a new version, a panel's closure and its results are rows of their own.

-- A gate's panel (one per gate key): the call whose selected teams it scores, the teams,
-- its score sheet (criteria with maximum points) and reviewers per team.
CREATE TABLE gate_panels (
    id                 uuid PRIMARY KEY,
    gate               text NOT NULL UNIQUE,
    call_id            uuid NOT NULL REFERENCES calls (id),
    teams              uuid[] NOT NULL CHECK (cardinality(teams) >= 1),
    criteria           jsonb NOT NULL,
    reviewers_per_team integer NOT NULL CHECK (reviewers_per_team >= 1),
    reason             text NOT NULL,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- A reviewer's assignment to one team of a panel (never to a conflicted pair).
CREATE TABLE gate_panel_assignments (
    id            uuid PRIMARY KEY,
    panel_id      uuid NOT NULL REFERENCES gate_panels (id),
    reviewer_id   text NOT NULL REFERENCES reviewers (id),
    consortium_id uuid NOT NULL,
    assigned_by   text NOT NULL,
    assigned_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (panel_id, reviewer_id, consortium_id)
);

-- Pairs a conflict of interest kept apart, with the reason (reported, never assigned).
CREATE TABLE gate_panel_blocked (
    panel_id      uuid NOT NULL REFERENCES gate_panels (id),
    reviewer_id   text NOT NULL,
    consortium_id uuid NOT NULL,
    reason        text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (panel_id, reviewer_id, consortium_id)
);

-- Every submission of a panel score sheet; the latest version counts.
CREATE TABLE gate_panel_sheets (
    assignment_id uuid NOT NULL REFERENCES gate_panel_assignments (id),
    version       integer NOT NULL CHECK (version >= 1),
    scores        jsonb NOT NULL,
    comments      jsonb NOT NULL,
    total         integer NOT NULL CHECK (total >= 0),
    recorded_by   text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assignment_id, version)
);

-- The panel's closure (once) and each team's consensus, written in the transaction that
-- publishes GatePanelScored.
CREATE TABLE gate_panel_closures (
    panel_id  uuid PRIMARY KEY REFERENCES gate_panels (id),
    closed_by text NOT NULL,
    closed_at timestamptz NOT NULL
);

CREATE TABLE gate_panel_results (
    panel_id      uuid NOT NULL REFERENCES gate_panel_closures (panel_id),
    consortium_id uuid NOT NULL,
    score_e4      bigint NOT NULL CHECK (score_e4 BETWEEN 0 AND 1000000),
    total_centi   bigint NOT NULL,
    per_criterion jsonb NOT NULL,
    reviewers     integer NOT NULL CHECK (reviewers >= 1),
    PRIMARY KEY (panel_id, consortium_id)
);

SELECT kaip_audit_table('gate_panels');
SELECT kaip_audit_table('gate_panel_assignments');
SELECT kaip_audit_table('gate_panel_blocked');
SELECT kaip_audit_table('gate_panel_sheets');
SELECT kaip_audit_table('gate_panel_closures');
SELECT kaip_audit_table('gate_panel_results');
