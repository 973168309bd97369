-- The pending transfers not yet posted, voided or expired, so the expiry sweeper's pass
-- reads the open reservations, not every pending transfer ever recorded (issue #8: its
-- query filtered all pending transfers by timeout and then looked each up for a
-- resolution, a cost that grew with resolved history; a partial index cannot say
-- "unresolved", which depends on another row).
--
-- A working table, not a decision record: each row is derived from `ledger_transfers`
-- (a pending transfer with no transfer naming it as `pending_id`), written by the trigger
-- below in the same statement as the transfers that open or resolve it, so it is never
-- out of step with a committed batch, and deleted once the reservation is resolved. The
-- decisions (the pending transfer, its post, void or expiry) stay in the immutable
-- `ledger_transfers`; `GET /invariants` replays them and reports any difference with this
-- table (`open_pending_differing_from_replay`). Not in the audit trail for the same reason
-- as `ledger_balance_history`: every row follows from an audited transfer.
CREATE TABLE ledger_open_pending (
    pending_id uuid PRIMARY KEY REFERENCES ledger_transfers (id),
    timeout_at timestamptz
);
CREATE INDEX ledger_open_pending_timeouts ON ledger_open_pending (timeout_at)
    WHERE timeout_at IS NOT NULL;

-- One statement per batch: open the pending transfers inserted, then close every pending
-- transfer a post, void or expiry inserted names (also one opened by the same batch).
CREATE FUNCTION gpu_ledger_track_open_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_open_pending (pending_id, timeout_at)
    SELECT n.id, n.timeout_at FROM ledger_new_transfers n WHERE n.kind = 'pending';
    DELETE FROM ledger_open_pending o
     USING ledger_new_transfers r
     WHERE r.pending_id IS NOT NULL AND o.pending_id = r.pending_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER track_open_pending AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS ledger_new_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_track_open_pending();

-- What is open now.
INSERT INTO ledger_open_pending (pending_id, timeout_at)
SELECT t.id, t.timeout_at FROM ledger_transfers t
 WHERE t.kind = 'pending'
   AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id);
