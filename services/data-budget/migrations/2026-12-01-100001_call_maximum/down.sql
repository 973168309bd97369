ALTER TABLE budget_teams DROP COLUMN call_max_krw;
