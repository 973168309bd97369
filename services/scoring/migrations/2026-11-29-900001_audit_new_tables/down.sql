-- Stops recording these tables; the trail recorded so far stays.
DROP TRIGGER IF EXISTS kaip_audit ON decision_versions;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON decision_versions;
DROP TRIGGER IF EXISTS kaip_audit ON evaluation_config_versions;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON evaluation_config_versions;
DROP TRIGGER IF EXISTS kaip_audit ON refused_withdrawals;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON refused_withdrawals;
DROP TRIGGER IF EXISTS kaip_audit ON reviewer_versions;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON reviewer_versions;
DROP TRIGGER IF EXISTS kaip_audit ON score_sheet_versions;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON score_sheet_versions;
DROP TRIGGER IF EXISTS kaip_audit ON tie_decisions;
DROP TRIGGER IF EXISTS kaip_audit_truncate ON tie_decisions;
