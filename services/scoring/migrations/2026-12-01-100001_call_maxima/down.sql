ALTER TABLE calls DROP COLUMN max_data_budget_krw, DROP COLUMN max_talent_funding_krw;
