-- Versions, never overwritten (DESIGN "Records", CONVENTIONS 18): every evaluation setting,
-- reviewer profile and score sheet ever saved is a row with who and when. The record is
-- these tables; `calls.config`, `reviewers` and `score_sheets` hold the latest version,
-- written in the same transaction, for the readers that want only the current one.

CREATE TABLE evaluation_config_versions (
    call_id      UUID NOT NULL REFERENCES calls (id),
    version      INTEGER NOT NULL CHECK (version >= 1),
    config       JSONB NOT NULL,
    recorded_by  TEXT NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, version)
);
INSERT INTO evaluation_config_versions (call_id, version, config, recorded_by)
SELECT id, 1, config, 'before-versions' FROM calls WHERE config IS NOT NULL;

CREATE TABLE reviewer_versions (
    reviewer_id   TEXT NOT NULL REFERENCES reviewers (id),
    version       INTEGER NOT NULL CHECK (version >= 1),
    name          TEXT NOT NULL,
    organisation  TEXT NOT NULL,
    brn           TEXT,
    expertise     JSONB NOT NULL,
    recorded_by   TEXT NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (reviewer_id, version)
);
INSERT INTO reviewer_versions (reviewer_id, version, name, organisation, brn, expertise, recorded_by, recorded_at)
SELECT id, 1, name, organisation, brn, expertise, 'before-versions', created_at FROM reviewers;

CREATE TABLE score_sheet_versions (
    assignment_id  UUID NOT NULL REFERENCES assignments (id),
    version        INTEGER NOT NULL CHECK (version >= 1),
    scores         JSONB NOT NULL,
    comments       JSONB NOT NULL,
    total          INTEGER NOT NULL,
    recorded_by    TEXT NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (assignment_id, version)
);
INSERT INTO score_sheet_versions (assignment_id, version, scores, comments, total, recorded_by, recorded_at)
SELECT s.assignment_id, 1, s.scores, s.comments, s.total, a.reviewer_id, s.updated_at
FROM score_sheets s JOIN assignments a ON a.id = s.assignment_id;
