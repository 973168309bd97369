-- Stops recording; the trail recorded so far stays.
DROP TRIGGER IF EXISTS kaip_audit ON programmes;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON programmes;
DROP TRIGGER IF EXISTS kaip_audit ON calls;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON calls;
DROP TRIGGER IF EXISTS kaip_audit ON consortia;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON consortia;
DROP TRIGGER IF EXISTS kaip_audit ON consortium_members;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON consortium_members;
DROP TRIGGER IF EXISTS kaip_audit ON proposals;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON proposals;
DROP TRIGGER IF EXISTS kaip_audit ON proposal_versions;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON proposal_versions;
DROP TRIGGER IF EXISTS kaip_audit ON proposal_documents;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON proposal_documents;
