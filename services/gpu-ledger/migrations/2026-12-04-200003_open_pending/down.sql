DROP TRIGGER track_open_pending ON ledger_transfers;
DROP FUNCTION gpu_ledger_track_open_pending();
DROP TABLE ledger_open_pending;
