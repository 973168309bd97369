DROP TRIGGER IF EXISTS kaip_audit_changes ON ledger_transfers;
DROP TRIGGER IF EXISTS kaip_audit ON ledger_transfers;
SELECT kaip_audit_table('ledger_transfers');
DROP FUNCTION IF EXISTS gpu_ledger_audit_inserts();
