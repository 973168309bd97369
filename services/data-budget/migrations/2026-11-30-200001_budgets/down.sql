DROP TABLE budget_eliminations, budget_payments, budget_invoices, budget_cancellations,
    budget_commitments, budget_joint_purchases, datasets, budget_caps, budgets, budget_teams,
    budget_programme_settings;
DROP FUNCTION data_budget_refuse_change();
