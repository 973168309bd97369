-- The decision records were protected from UPDATE and DELETE row by row, but TRUNCATE fires
-- no row trigger: refuse it too, as on transfers and balance history.
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_model_factors
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_supplier_records
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_offers
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_offer_reservations
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_offer_acceptances
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_tranches
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_eliminations
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON gpu_usage_reports
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_refuse_change();
