-- Who withdrew a proposal, and a withdrawal scoring refused because the decision was
-- published first (the proposal is restored and its consortium told why).
ALTER TABLE proposals
    ADD COLUMN withdrawn_by TEXT,
    ADD COLUMN withdrawal_refused_at TIMESTAMPTZ,
    ADD COLUMN withdrawal_refusal TEXT;

-- Every version of a consortium's profile, kept: a new registration is a new row, and the
-- current profile is the latest one. `consortium_members` is no longer written.
CREATE TABLE consortium_versions (
    consortium_id  UUID NOT NULL REFERENCES consortia (id),
    version        INTEGER NOT NULL CHECK (version >= 1),
    name           TEXT NOT NULL,
    members        JSONB NOT NULL,
    recorded_by    TEXT NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consortium_id, version)
);

-- Profiles registered before versions were kept become version 1.
INSERT INTO consortium_versions (consortium_id, version, name, members, recorded_by, recorded_at)
SELECT c.id, 1, c.name,
       COALESCE((SELECT jsonb_agg(jsonb_build_object(
                     'name', m.name, 'org_type', m.org_type,
                     'business_registration_number', m.brn, 'role', m.role) ORDER BY m.position)
                 FROM consortium_members m WHERE m.consortium_id = c.id), '[]'::jsonb),
       'before-versions', c.updated_at
FROM consortia c;
