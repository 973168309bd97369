-- Back to the trail without a per-statement mode (run after every table recorded per
-- statement went back to the row trigger: kaip_audit_table(t, per_statement => false)).
DROP FUNCTION kaip_audit_table(regclass, text[], text[], boolean);
DROP FUNCTION kaip_audit_statement();
CREATE OR REPLACE FUNCTION kaip_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_op     uuid;
    v_pk     text[] := string_to_array(TG_ARGV[0], ',');
    v_redact text[] := coalesce(string_to_array(nullif(TG_ARGV[1], ''), ','), '{}');
    -- Personal columns (TG_ARGV[2], when given): recorded as "[personal data]", whatever
    -- their type (text, arrays, numbers, dates), before and after.
    v_personal text[] := CASE WHEN TG_NARGS > 2
                              THEN coalesce(string_to_array(nullif(TG_ARGV[2], ''), ','), '{}')
                              ELSE '{}' END;
    v_before jsonb;
    v_after  jsonb;
    v_key    jsonb;
    v_ids    text[];
    v_item   text;
    v_col    text;
    v_type   text;
BEGIN
    -- Only the service's own tables: a trigger some session put on a temporary table of the
    -- same name would otherwise record changes that never happened.
    IF TG_TABLE_SCHEMA <> 'public' THEN
        RAISE EXCEPTION 'the audit trail records the tables of schema public only, not %.%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        v_op := kaip_audit_operation();
        INSERT INTO audit_changes (operation_id, table_name, row_key, entity_ids, action)
        VALUES (v_op, TG_TABLE_NAME, '{}'::jsonb, '{}', 'truncate');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_before := to_jsonb(OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_after := to_jsonb(NEW);
    END IF;
    -- An update that changed nothing changed no state.
    IF TG_OP = 'UPDATE' AND v_before = v_after THEN
        RETURN NULL;
    END IF;
    FOREACH v_item IN ARRAY v_redact LOOP
        v_col := split_part(v_item, ':', 1);
        v_type := split_part(v_item, ':', 2);
        IF v_before ? v_col AND jsonb_typeof(v_before->v_col) = 'string' THEN
            v_before := jsonb_set(v_before, ARRAY[v_col], kaip_audit_digest(v_before->>v_col, v_type));
        END IF;
        IF v_after ? v_col AND jsonb_typeof(v_after->v_col) = 'string' THEN
            v_after := jsonb_set(v_after, ARRAY[v_col], kaip_audit_digest(v_after->>v_col, v_type));
        END IF;
    END LOOP;
    FOREACH v_col IN ARRAY v_personal LOOP
        IF v_before ? v_col AND jsonb_typeof(v_before->v_col) <> 'null' THEN
            v_before := jsonb_set(v_before, ARRAY[v_col], '"[personal data]"'::jsonb);
        END IF;
        IF v_after ? v_col AND jsonb_typeof(v_after->v_col) <> 'null' THEN
            v_after := jsonb_set(v_after, ARRAY[v_col], '"[personal data]"'::jsonb);
        END IF;
    END LOOP;
    -- An update that changed only personal columns is still recorded (who touched which
    -- row, when), with the values hidden.
    SELECT jsonb_object_agg(k, coalesce(v_after, v_before)->k)
      INTO v_key
      FROM unnest(v_pk) AS k;
    -- What `entity` filters match: the key's values and the row's references (`id`,
    -- `*_id` columns, before and after), so a proposal's id also finds its evaluation case.
    SELECT array_agg(DISTINCT v)
      INTO v_ids
      FROM (SELECT value AS v FROM jsonb_each_text(v_key)
            UNION
            SELECT e.value FROM jsonb_each_text(coalesce(v_before, '{}'::jsonb)) e
             WHERE e.key = 'id' OR e.key LIKE '%\_id'
            UNION
            SELECT e.value FROM jsonb_each_text(coalesce(v_after, '{}'::jsonb)) e
             WHERE e.key = 'id' OR e.key LIKE '%\_id') ids
     WHERE v IS NOT NULL;
    v_op := kaip_audit_operation();
    INSERT INTO audit_changes (operation_id, table_name, row_key, entity_ids, action, before, after)
    VALUES (v_op, TG_TABLE_NAME, coalesce(v_key, '{}'::jsonb), coalesce(v_ids, '{}'),
            lower(TG_OP), v_before, v_after);
    RETURN NULL;
END
$$;
ALTER FUNCTION kaip_audit_row() SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;

-- (the 2026-12-01 kaip_audit_table, as it was)

-- Opts a domain table into the trail. `redact` names columns recorded as a digest (sha256
-- and size) instead of their value: document bytes, secrets. `personal` names columns
-- recorded as "[personal data]". Call it again after changing the table's primary key or
-- the lists. Idempotent.
CREATE FUNCTION kaip_audit_table(tbl regclass, redact text[] DEFAULT '{}',
                                 personal text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_pk       text;
    v_redact   text;
    v_personal text;
    v_found    int;
BEGIN
    SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey::int2[], a.attnum))
      INTO v_pk
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = tbl AND i.indisprimary;
    IF v_pk IS NULL THEN
        RAISE EXCEPTION 'kaip_audit_table: % has no primary key', tbl;
    END IF;
    SELECT coalesce(string_agg(a.attname || ':' || format_type(a.atttypid, NULL), ','), ''),
           count(*)
      INTO v_redact, v_found
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = ANY (redact) AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_found <> cardinality(redact) THEN
        RAISE EXCEPTION 'kaip_audit_table: % has no column among %', tbl, redact;
    END IF;
    SELECT coalesce(string_agg(a.attname, ','), ''), count(*)
      INTO v_personal, v_found
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = ANY (personal) AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_found <> cardinality(personal) THEN
        RAISE EXCEPTION 'kaip_audit_table: % has no column among %', tbl, personal;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(personal) p
                WHERE p = ANY (string_to_array(v_pk, ',')) OR p = 'id' OR p LIKE '%\_id') THEN
        RAISE EXCEPTION 'kaip_audit_table: % keys and references (%) identify rows and cannot be personal',
            tbl, personal;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS kaip_audit ON %s', tbl);
    EXECUTE format('CREATE TRIGGER kaip_audit AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION kaip_audit_row(%L, %L, %L)',
                   tbl, v_pk, v_redact, v_personal);
    EXECUTE format('DROP TRIGGER IF EXISTS kaip_audit_truncate ON %s', tbl);
    EXECUTE format('CREATE TRIGGER kaip_audit_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION kaip_audit_row(%L, %L, %L)',
                   tbl, v_pk, v_redact, v_personal);
END
$$;
REVOKE EXECUTE ON FUNCTION kaip_audit_table(regclass, text[], text[]) FROM PUBLIC;
DROP FUNCTION kaip_audit_mask(jsonb, text[], text[]);
