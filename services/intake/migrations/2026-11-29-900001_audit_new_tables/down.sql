-- Stops recording these tables; the trail recorded so far stays.
DROP TRIGGER IF EXISTS kaip_audit ON consortium_versions;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON consortium_versions;
DROP TRIGGER IF EXISTS kaip_audit ON proposal_withdrawals;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON proposal_withdrawals;
