-- A supplier's invoice is recorded once per commitment, not again under a new id.
ALTER TABLE budget_invoices
    ADD CONSTRAINT budget_invoices_commitment_invoice_no UNIQUE (commitment_id, invoice_no);
