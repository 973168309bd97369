-- One evaluation case per submitted proposal, opened when scoring sees ProposalSubmitted.
CREATE TABLE evaluation_cases (
    id             UUID PRIMARY KEY,
    proposal_id    UUID NOT NULL UNIQUE,
    call_id        UUID NOT NULL,
    consortium_id  UUID NOT NULL,
    title          TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open')),
    opened_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX evaluation_cases_call ON evaluation_cases (call_id, id);
