DROP TABLE IF EXISTS gpu_supplier_records;
DROP TABLE IF EXISTS ledger_balance_history;
DROP TABLE IF EXISTS ledger_transfers;
DROP TABLE IF EXISTS ledger_accounts;
DROP FUNCTION IF EXISTS gpu_ledger_account_identity_fixed();
DROP TABLE IF EXISTS gpu_model_factors;
DROP TABLE IF EXISTS gpu_models;
DROP FUNCTION IF EXISTS gpu_ledger_refuse_change();
