-- The audit trail records a batch's transfers with one statement, not one trigger call per row.
--
-- A batch of 1,000 transfers is one multi-row INSERT; the row trigger (kaip_audit_row) ran
-- 1,000 times inside it, about 70 µs each: two thirds of the statement's time, all of it
-- while the batch holds the pool's row lock (issue #8's profile). This statement-level
-- trigger writes the same record with one INSERT ... SELECT from the statement's
-- transition table: still one `audit_changes` row per transfer (table, key, action
-- `insert`, `after` = the row as to_jsonb gives it, `entity_ids` = the key and every `id` /
-- `*_id` value), in insert order, under the transaction's one operation. So `auditTrail`,
-- `GET /audit` and the `AuditRecorded` export see exactly what they saw before.
--
-- Only INSERT is recorded this way (PostgreSQL allows a transition table for one event per
-- trigger): UPDATE and DELETE (refused on ledger_transfers by `immutable`, but recorded if
-- an owner ever disabled that) keep the row trigger, as `kaip_audit_changes`. The trigger
-- keeps its name `kaip_audit` (tests/e2e/audit.rs checks every domain table has it).
-- Calling kaip_audit_table('ledger_transfers') again would put the row trigger back; the
-- down migration does that.
--
-- Same guards as the row trigger: SECURITY DEFINER owned by the trail's owner, fixed
-- search path, schema public only, EXECUTE revoked from PUBLIC (so the login role cannot
-- put it on a table of its own), and no operation without a change.
CREATE FUNCTION gpu_ledger_audit_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_op uuid;
    v_pk text[] := string_to_array(TG_ARGV[0], ',');
BEGIN
    IF TG_TABLE_SCHEMA <> 'public' THEN
        RAISE EXCEPTION 'the audit trail records the tables of schema public only, not %.%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP <> 'INSERT' OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION 'gpu_ledger_audit_inserts records INSERT statements only (% %)', TG_LEVEL, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;  -- nothing inserted: no change, no operation
    END IF;
    v_op := kaip_audit_operation();
    INSERT INTO audit_changes (operation_id, table_name, row_key, entity_ids, action, before, after)
    SELECT v_op, TG_TABLE_NAME,
           coalesce((SELECT jsonb_object_agg(k, r.j->k) FROM unnest(v_pk) AS k), '{}'::jsonb),
           coalesce((SELECT array_agg(DISTINCT v)
                       FROM (SELECT value AS v FROM jsonb_each_text(r.j)
                              WHERE key = ANY (v_pk) OR key = 'id' OR key LIKE '%\_id') ids
                      WHERE v IS NOT NULL), '{}'),
           'insert', NULL, r.j
      FROM (SELECT to_jsonb(n) AS j, row_number() OVER () AS ord FROM new_rows n) r
     ORDER BY r.ord;
    RETURN NULL;
END
$$;
ALTER FUNCTION gpu_ledger_audit_inserts() SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
REVOKE EXECUTE ON FUNCTION gpu_ledger_audit_inserts() FROM PUBLIC;

DROP TRIGGER kaip_audit ON ledger_transfers;
CREATE TRIGGER kaip_audit AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gpu_ledger_audit_inserts('id');
CREATE TRIGGER kaip_audit_changes AFTER UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION kaip_audit_row('id', '', '');
