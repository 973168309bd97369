-- Tables added after the audit trail arrived opt in the same way (kaip-bus's audit_trail
-- migration); tests/e2e/audit.rs fails if a domain table is left out.
SELECT kaip_audit_table('consortium_versions');
SELECT kaip_audit_table('proposal_withdrawals');
