-- The call's per-team maxima as intake announced them in CallOpened (NULL for a call
-- announced before they were), forwarded in SelectionPublished to the grant services.
ALTER TABLE calls
    ADD COLUMN max_data_budget_krw bigint CHECK (max_data_budget_krw >= 0),
    ADD COLUMN max_talent_funding_krw bigint CHECK (max_talent_funding_krw >= 0);
