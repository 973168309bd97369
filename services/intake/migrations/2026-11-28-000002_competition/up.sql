-- The competition phase: consortia, call rules, drafts with versions, documents, receipts.

CREATE TABLE consortia (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE consortium_members (
    consortium_id  UUID NOT NULL REFERENCES consortia (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    name           TEXT NOT NULL,
    org_type       TEXT NOT NULL CHECK (org_type IN ('large_enterprise', 'mid_size', 'sme', 'startup', 'university', 'research_institute')),
    brn            TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('lead', 'partner')),
    PRIMARY KEY (consortium_id, position),
    UNIQUE (consortium_id, brn)
);

ALTER TABLE calls
    ADD COLUMN eligibility JSONB NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN required_documents JSONB NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN decided_at TIMESTAMPTZ;

-- Proposals now start as drafts; `submitted_at` is set on submission.
ALTER TABLE proposals
    ALTER COLUMN submitted_at DROP NOT NULL,
    ALTER COLUMN submitted_at DROP DEFAULT,
    ADD COLUMN status TEXT NOT NULL DEFAULT 'submitted' CHECK (status IN ('draft', 'submitted', 'withdrawn')),
    ADD COLUMN version INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN resources JSONB NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN idempotency_key TEXT,
    ADD COLUMN content_hash TEXT,
    ADD COLUMN withdrawn_at TIMESTAMPTZ,
    ADD COLUMN withdrawal_reason TEXT,
    ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE proposals ALTER COLUMN status SET DEFAULT 'draft';

-- Every version of a proposal, kept: what was submitted can always be shown.
CREATE TABLE proposal_versions (
    proposal_id  UUID NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    title        TEXT NOT NULL,
    summary      TEXT NOT NULL,
    resources    JSONB NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (proposal_id, version)
);

CREATE TABLE proposal_documents (
    proposal_id  UUID NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    filename     TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL CHECK (size_bytes >= 0),
    content      BYTEA NOT NULL,
    uploaded_by  TEXT NOT NULL,
    uploaded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (proposal_id, kind)
);
