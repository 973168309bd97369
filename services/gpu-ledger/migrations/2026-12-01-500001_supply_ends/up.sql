-- The officer records WHEN a consortium's supplying ends (possibly in the future): a record
-- with `supplying = false` may carry `ends_at`, and until then the consortium still counts
-- as a supplier. Records stay immutable: a corrected date is a new record (the latest by
-- `seq` is in force). Records without a date keep their meaning: `supplying = false` ended
-- when it was recorded. A start of supplying carries no end date.
ALTER TABLE gpu_supplier_records ADD COLUMN ends_at timestamptz;
ALTER TABLE gpu_supplier_records ADD CONSTRAINT only_an_end_has_a_date
    CHECK (ends_at IS NULL OR NOT supplying);
