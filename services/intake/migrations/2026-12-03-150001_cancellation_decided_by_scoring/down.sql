ALTER TABLE call_cancellations DROP COLUMN confirmed_at, DROP COLUMN refused_at, DROP COLUMN refusal;
ALTER TABLE calls DROP COLUMN cancel_requested_at;
