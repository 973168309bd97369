-- The ledger's transfers are recorded by the shared trail's per-statement mode (bus
-- migration 2026-12-04-200001) instead of the ledger's own copy of it
-- (`gpu_ledger_audit_inserts`, 2026-12-03-300001): the same record, one statement per
-- batch, and now with the trail's redaction and personal-column lists, and a re-run of
-- kaip_audit_table on this table keeps one set of triggers in this mode.
SELECT kaip_audit_table('ledger_transfers', per_statement => true);
DROP FUNCTION gpu_ledger_audit_inserts();
