DROP TABLE consortium_versions;
ALTER TABLE proposals
    DROP COLUMN withdrawn_by,
    DROP COLUMN withdrawal_refused_at,
    DROP COLUMN withdrawal_refusal;
