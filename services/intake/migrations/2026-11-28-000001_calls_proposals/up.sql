CREATE TABLE calls (
    id          UUID PRIMARY KEY,
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    opens_at    TIMESTAMPTZ NOT NULL,
    closes_at   TIMESTAMPTZ NOT NULL CHECK (closes_at > opens_at),
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE proposals (
    id             UUID PRIMARY KEY,
    call_id        UUID NOT NULL REFERENCES calls (id),
    consortium_id  UUID NOT NULL,
    title          TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    summary        TEXT NOT NULL,
    submitted_by   TEXT NOT NULL,
    submitted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One proposal per consortium per call.
    UNIQUE (call_id, consortium_id)
);
CREATE INDEX proposals_consortium ON proposals (consortium_id, id);
