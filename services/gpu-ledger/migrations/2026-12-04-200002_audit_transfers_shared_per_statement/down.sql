-- Back to the ledger's own statement trigger (2026-12-03-300001), as it was.
DROP TRIGGER IF EXISTS kaip_audit_changes ON ledger_transfers;
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
