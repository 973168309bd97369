-- Scoring owns publication, so it decides a cancellation: intake records the request
-- (`cancel_requested_at`, the call takes no new proposal) and keeps the gate locked;
-- `calls.cancelled_at` (which frees the gate through the partial unique index) is set only
-- when scoring confirms. A refusal (the selection was published first) is kept on the
-- request row with its reason.
ALTER TABLE calls ADD COLUMN cancel_requested_at TIMESTAMPTZ;
UPDATE calls SET cancel_requested_at = cancelled_at WHERE cancelled_at IS NOT NULL;
ALTER TABLE call_cancellations
    ADD COLUMN confirmed_at TIMESTAMPTZ,
    ADD COLUMN refused_at TIMESTAMPTZ,
    ADD COLUMN refusal TEXT;
