-- Tables added after the audit trail arrived opt in the same way (kaip-bus's audit_trail
-- migration); tests/e2e/audit.rs fails if a domain table is left out.
SELECT kaip_audit_table('decision_versions');
SELECT kaip_audit_table('evaluation_config_versions');
SELECT kaip_audit_table('refused_withdrawals');
SELECT kaip_audit_table('reviewer_versions');
SELECT kaip_audit_table('score_sheet_versions');
SELECT kaip_audit_table('tie_decisions');
