ALTER TABLE gpu_supplier_records DROP CONSTRAINT only_an_end_has_a_date;
ALTER TABLE gpu_supplier_records DROP COLUMN ends_at;
