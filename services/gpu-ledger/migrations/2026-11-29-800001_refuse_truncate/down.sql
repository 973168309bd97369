DROP TRIGGER immutable_truncate ON gpu_usage_reports;
DROP TRIGGER immutable_truncate ON gpu_eliminations;
DROP TRIGGER immutable_truncate ON gpu_tranches;
DROP TRIGGER immutable_truncate ON gpu_offer_acceptances;
DROP TRIGGER immutable_truncate ON gpu_offer_reservations;
DROP TRIGGER immutable_truncate ON gpu_offers;
DROP TRIGGER immutable_truncate ON gpu_supplier_records;
DROP TRIGGER immutable_truncate ON gpu_model_factors;
