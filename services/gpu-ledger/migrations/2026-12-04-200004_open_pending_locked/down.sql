-- The lockdown's revocations are not given back: the owner grants again what it wants.
DROP FUNCTION gpu_ledger_open_pending_lockdown();
DROP FUNCTION gpu_ledger_prune_open_pending();
CREATE OR REPLACE FUNCTION gpu_ledger_track_open_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_open_pending (pending_id, timeout_at)
    SELECT n.id, n.timeout_at FROM ledger_new_transfers n WHERE n.kind = 'pending';
    DELETE FROM ledger_open_pending o
     USING ledger_new_transfers r
     WHERE r.pending_id IS NOT NULL AND o.pending_id = r.pending_id;
    RETURN NULL;
END
$$;
ALTER FUNCTION gpu_ledger_track_open_pending() SECURITY INVOKER RESET search_path;
GRANT EXECUTE ON FUNCTION gpu_ledger_track_open_pending() TO PUBLIC;
-- Rows the owner removed or kept by hand may not name a transfer: keep only those that do.
DELETE FROM ledger_open_pending o
 WHERE NOT EXISTS (SELECT 1 FROM ledger_transfers t WHERE t.id = o.pending_id);
ALTER TABLE ledger_open_pending ADD CONSTRAINT ledger_open_pending_pending_id_fkey
    FOREIGN KEY (pending_id) REFERENCES ledger_transfers (id);
