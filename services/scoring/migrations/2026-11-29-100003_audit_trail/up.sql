-- Every scoring domain table is in the audit trail (kaip-bus's audit_trail migration): each
-- change is recorded with its actor, trace and operation in the same transaction. Tables
-- added later opt in the same way.
SELECT kaip_audit_table('evaluation_cases');
SELECT kaip_audit_table('calls');
SELECT kaip_audit_table('reviewers');
SELECT kaip_audit_table('conflicts');
SELECT kaip_audit_table('assignments');
SELECT kaip_audit_table('blocked_assignments');
SELECT kaip_audit_table('score_sheets');
SELECT kaip_audit_table('stage_closures');
SELECT kaip_audit_table('stage_results');
SELECT kaip_audit_table('decisions');
SELECT kaip_audit_table('appeals');
