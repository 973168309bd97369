-- The call's per-team maximum from SelectionPublished (NULL: the selection did not carry
-- one, and the team's cap was opened from its request). Kept so that budgets opened later
-- (when the programme adds fiscal years) open from the same rule.
ALTER TABLE budget_teams ADD COLUMN call_max_krw bigint CHECK (call_max_krw >= 0);
