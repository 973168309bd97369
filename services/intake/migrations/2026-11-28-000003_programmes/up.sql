-- Programmes group the calls a ministry runs (e.g. the sovereign AI foundation-model
-- programme, fiscal year 2026). Calls opened before programmes existed have none.
CREATE TABLE programmes (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    fiscal_year  INTEGER NOT NULL CHECK (fiscal_year BETWEEN 2000 AND 2100),
    description  TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (name, fiscal_year)
);

ALTER TABLE calls ADD COLUMN programme_id UUID REFERENCES programmes (id);
CREATE INDEX calls_programme ON calls (programme_id, id);
