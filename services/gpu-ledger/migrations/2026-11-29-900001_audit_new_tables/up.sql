-- Tables added after the audit trail arrived opt in the same way (kaip-bus's audit_trail
-- migration); tests/e2e/audit.rs fails if a domain table is left out.
SELECT kaip_audit_table('gpu_eliminations');
SELECT kaip_audit_table('gpu_model_factors');
SELECT kaip_audit_table('gpu_models');
SELECT kaip_audit_table('gpu_offer_acceptances');
SELECT kaip_audit_table('gpu_offer_reservations');
SELECT kaip_audit_table('gpu_offers');
SELECT kaip_audit_table('gpu_supplier_records');
SELECT kaip_audit_table('gpu_teams');
SELECT kaip_audit_table('gpu_tranches');
SELECT kaip_audit_table('gpu_usage_reports');
SELECT kaip_audit_table('ledger_accounts');
SELECT kaip_audit_table('ledger_transfers');
