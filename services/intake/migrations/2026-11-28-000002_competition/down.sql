DROP TABLE proposal_documents;
DROP TABLE proposal_versions;
ALTER TABLE proposals
    DROP COLUMN status, DROP COLUMN version, DROP COLUMN resources, DROP COLUMN idempotency_key,
    DROP COLUMN content_hash, DROP COLUMN withdrawn_at, DROP COLUMN withdrawal_reason, DROP COLUMN created_at;
ALTER TABLE calls DROP COLUMN eligibility, DROP COLUMN required_documents, DROP COLUMN decided_at;
DROP TABLE consortium_members;
DROP TABLE consortia;
