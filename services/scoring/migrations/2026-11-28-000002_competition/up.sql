-- Scoring for the competition phase: evaluation settings per call, reviewers and their
-- conflicts, assignments per stage, score sheets, stage results, the decision, appeals.

CREATE TABLE calls (
    id            UUID PRIMARY KEY,
    title         TEXT NOT NULL,
    closes_at     TIMESTAMPTZ NOT NULL,
    config        JSONB,
    published_at  TIMESTAMPTZ
);

ALTER TABLE evaluation_cases DROP CONSTRAINT evaluation_cases_status_check;
ALTER TABLE evaluation_cases
    ADD CONSTRAINT evaluation_cases_status_check
        CHECK (status IN ('open', 'withdrawn', 'eliminated', 'finalist', 'selected', 'not_selected')),
    ADD COLUMN consortium_name TEXT NOT NULL DEFAULT '',
    ADD COLUMN members JSONB NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN resources JSONB NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN stage INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN submitted_at TIMESTAMPTZ NOT NULL DEFAULT now();

CREATE TABLE reviewers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    organisation  TEXT NOT NULL,
    brn           TEXT,
    expertise     JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Declared conflicts of interest (organisational ones are detected from membership).
CREATE TABLE conflicts (
    reviewer_id    TEXT NOT NULL REFERENCES reviewers (id),
    consortium_id  UUID NOT NULL,
    reason         TEXT NOT NULL,
    declared_by    TEXT NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (reviewer_id, consortium_id)
);

CREATE TABLE assignments (
    id           UUID PRIMARY KEY,
    call_id      UUID NOT NULL,
    stage        INTEGER NOT NULL,
    reviewer_id  TEXT NOT NULL REFERENCES reviewers (id),
    case_id      UUID NOT NULL REFERENCES evaluation_cases (id),
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stage, reviewer_id, case_id)
);
CREATE INDEX assignments_reviewer ON assignments (reviewer_id, id);
CREATE INDEX assignments_call_stage ON assignments (call_id, stage);

-- Pairs the assignment refused, with the reason: the record a reviewer was kept off.
CREATE TABLE blocked_assignments (
    call_id      UUID NOT NULL,
    stage        INTEGER NOT NULL,
    reviewer_id  TEXT NOT NULL,
    case_id      UUID NOT NULL,
    reason       TEXT NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, stage, reviewer_id, case_id)
);

CREATE TABLE score_sheets (
    assignment_id  UUID PRIMARY KEY REFERENCES assignments (id),
    scores         JSONB NOT NULL,
    comments       JSONB NOT NULL DEFAULT '{}'::jsonb,
    total          INTEGER NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE stage_closures (
    call_id    UUID NOT NULL,
    stage      INTEGER NOT NULL,
    closed_by  TEXT NOT NULL,
    closed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, stage)
);

CREATE TABLE stage_results (
    call_id        UUID NOT NULL,
    stage          INTEGER NOT NULL,
    case_id        UUID NOT NULL REFERENCES evaluation_cases (id),
    position       INTEGER,
    total_centi    BIGINT NOT NULL,
    per_criterion  JSONB NOT NULL,
    eligible       BOOLEAN NOT NULL,
    shortfalls     JSONB NOT NULL DEFAULT '[]'::jsonb,
    advanced       BOOLEAN NOT NULL,
    tie_broken_by  TEXT,
    PRIMARY KEY (call_id, stage, case_id)
);

CREATE TABLE decisions (
    call_id          UUID PRIMARY KEY REFERENCES calls (id),
    selected         JSONB NOT NULL,
    total_centi      BIGINT NOT NULL,
    departure        JSONB,
    override_reason  TEXT,
    decided_by       TEXT NOT NULL,
    decided_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at     TIMESTAMPTZ
);

CREATE TABLE appeals (
    id             UUID PRIMARY KEY,
    call_id        UUID NOT NULL,
    case_id        UUID NOT NULL REFERENCES evaluation_cases (id),
    consortium_id  UUID NOT NULL,
    grounds        TEXT NOT NULL,
    filed_by       TEXT NOT NULL,
    filed_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    answer         TEXT,
    answered_by    TEXT,
    answered_at    TIMESTAMPTZ
);
CREATE INDEX appeals_consortium ON appeals (consortium_id, id);
