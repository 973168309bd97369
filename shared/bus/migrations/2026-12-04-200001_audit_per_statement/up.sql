-- A per-statement mode of the audit trail, for inserts (issue #8).
--
-- The row trigger (kaip_audit_row) costs one trigger call and one INSERT per row: about
-- 70 µs a row, two thirds of a 1,000-transfer batch's INSERT in the ledger's profile, all
-- of it under the pool's row lock. A table opts into one statement per INSERT with
--   SELECT kaip_audit_table('<table>', per_statement => true);
-- (the redact and personal lists as before). Its INSERTs are then recorded by a
-- statement-level trigger over the statement's transition table (kaip_audit_statement):
-- exactly the rows the row trigger writes (one `audit_changes` row per inserted row, in
-- insert order, same key, entity ids, `after`, action `insert`, under the transaction's one
-- operation), with the same redaction and personal columns (both triggers mask a row with
-- kaip_audit_mask). UPDATE and DELETE keep the row trigger (PostgreSQL gives a trigger with
-- a transition table one event only) as `kaip_audit_changes`, TRUNCATE its statement
-- trigger `kaip_audit_truncate`; the INSERT trigger keeps the name `kaip_audit`.
--
-- kaip_audit_table is idempotent in both modes: it drops every trigger of the trail on the
-- table (`kaip_audit`, `kaip_audit_changes`, `kaip_audit_truncate`) before creating the set
-- of the mode asked for, so a table never has two that record one change. Without
-- `per_statement` it keeps the mode the table has (a table already recorded per statement
-- stays so); `per_statement => false` goes back to the row trigger.
--
-- Refused (not PostgreSQL's limit, which allows a statement trigger with a transition table
-- on all of these, but a different record): a partitioned table (the statement trigger
-- names the parent where the row trigger, cloned to each partition, names the partition), a
-- partition (its statement trigger misses the rows inserted through the parent, which its
-- row trigger records), and a table with inheritance children. kaip_audit_table refuses
-- `per_statement => true` for them, naming the table; a table that becomes one later (a
-- partition attached, a child created) has its inserts refused by the statement trigger,
-- until kaip_audit_table puts it back on the row trigger.

-- A row as the trail records it: redacted columns (`name:type`) as their digest, personal
-- columns as "[personal data]" (a NULL stays NULL). One definition for both triggers.
CREATE FUNCTION kaip_audit_mask(v_row jsonb, v_redact text[], v_personal text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_item text;
    v_col  text;
BEGIN
    IF v_row IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH v_item IN ARRAY v_redact LOOP
        v_col := split_part(v_item, ':', 1);
        IF v_row ? v_col AND jsonb_typeof(v_row->v_col) = 'string' THEN
            v_row := jsonb_set(v_row, ARRAY[v_col],
                               kaip_audit_digest(v_row->>v_col, split_part(v_item, ':', 2)));
        END IF;
    END LOOP;
    FOREACH v_col IN ARRAY v_personal LOOP
        IF v_row ? v_col AND jsonb_typeof(v_row->v_col) <> 'null' THEN
            v_row := jsonb_set(v_row, ARRAY[v_col], '"[personal data]"'::jsonb);
        END IF;
    END LOOP;
    RETURN v_row;
END
$$;

-- The row trigger, masking with kaip_audit_mask (what it wrote is unchanged).
CREATE OR REPLACE FUNCTION kaip_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_op     uuid;
    v_pk     text[] := string_to_array(TG_ARGV[0], ',');
    v_redact text[] := coalesce(string_to_array(nullif(TG_ARGV[1], ''), ','), '{}');
    v_personal text[] := CASE WHEN TG_NARGS > 2
                              THEN coalesce(string_to_array(nullif(TG_ARGV[2], ''), ','), '{}')
                              ELSE '{}' END;
    v_before jsonb;
    v_after  jsonb;
    v_key    jsonb;
    v_ids    text[];
BEGIN
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
    -- An update that changed only personal columns is still recorded (who touched which
    -- row, when), with the values hidden.
    IF cardinality(v_redact) > 0 OR cardinality(v_personal) > 0 THEN
        v_before := kaip_audit_mask(v_before, v_redact, v_personal);
        v_after := kaip_audit_mask(v_after, v_redact, v_personal);
    END IF;
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

-- The statement trigger for INSERT: TG_ARGV as kaip_audit_row's (key columns, redacted
-- `name:type` columns, personal columns); the statement's rows in `kaip_audit_new_rows`.
-- One INSERT ... SELECT writes what kaip_audit_row writes for each row, in the order the
-- rows were inserted (a transition table is read in insert order), and nothing (not even
-- the operation) for a statement that inserted no row.
CREATE FUNCTION kaip_audit_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_op       uuid;
    v_pk       text[] := string_to_array(TG_ARGV[0], ',');
    v_redact   text[] := coalesce(string_to_array(nullif(TG_ARGV[1], ''), ','), '{}');
    v_personal text[] := coalesce(string_to_array(nullif(TG_ARGV[2], ''), ','), '{}');
    v_mask     boolean;
BEGIN
    IF TG_TABLE_SCHEMA <> 'public' THEN
        RAISE EXCEPTION 'the audit trail records the tables of schema public only, not %.%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP <> 'INSERT' OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION 'kaip_audit_statement records INSERT statements only (% %)', TG_LEVEL, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = TG_RELID)
       OR (SELECT c.relispartition FROM pg_class c WHERE c.oid = TG_RELID) THEN
        RAISE EXCEPTION 'the audit trail records %.% per statement, but it is now a partition or has inheritance children: run kaip_audit_table(''%'', ..., per_statement => false)',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaip_audit_new_rows) THEN
        RETURN NULL;  -- nothing inserted: no change, no operation
    END IF;
    v_mask := cardinality(v_redact) > 0 OR cardinality(v_personal) > 0;
    v_op := kaip_audit_operation();
    INSERT INTO audit_changes (operation_id, table_name, row_key, entity_ids, action, before, after)
    SELECT v_op, TG_TABLE_NAME,
           coalesce((SELECT jsonb_object_agg(k, r.j->k) FROM unnest(v_pk) AS k), '{}'::jsonb),
           coalesce((SELECT array_agg(DISTINCT v)
                       FROM (SELECT r.j->>k AS v FROM unnest(v_pk) AS k
                             UNION
                             SELECT e.value FROM jsonb_each_text(r.j) e
                              WHERE e.key = 'id' OR e.key LIKE '%\_id') ids
                      WHERE v IS NOT NULL), '{}'),
           'insert', NULL, r.j
      -- `n.*`: the whole row, even in a table with a column named `n`.
      FROM (SELECT CASE WHEN v_mask THEN kaip_audit_mask(to_jsonb(n.*), v_redact, v_personal)
                        ELSE to_jsonb(n.*) END AS j,
                   row_number() OVER () AS ord
              FROM kaip_audit_new_rows n) r
     ORDER BY r.ord;
    RETURN NULL;
END
$$;
ALTER FUNCTION kaip_audit_statement() SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
REVOKE EXECUTE ON FUNCTION kaip_audit_statement() FROM PUBLIC;

DROP FUNCTION kaip_audit_table(regclass, text[], text[]);

-- Opts a domain table into the trail. `redact` names columns recorded as a digest (sha256
-- and size) instead of their value: document bytes, secrets. `personal` names columns
-- recorded as "[personal data]". `per_statement` records INSERTs with one statement per
-- statement instead of one trigger call per row (same record); NULL keeps the table's
-- current mode (row by row for a table not yet audited). Call it again after changing the
-- table's primary key or the lists. Idempotent: the table ends with one set of triggers.
CREATE FUNCTION kaip_audit_table(tbl regclass, redact text[] DEFAULT '{}',
                                 personal text[] DEFAULT '{}',
                                 per_statement boolean DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_pk       text;
    v_redact   text;
    v_personal text;
    v_found    int;
    v_statement boolean := per_statement;
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
    IF v_statement IS NULL THEN
        -- The mode the table has: its `kaip_audit` is a statement trigger (bit 0 of tgtype
        -- unset) when its inserts are recorded per statement.
        SELECT coalesce(bool_or(t.tgtype & 1 = 0), false)
          INTO v_statement
          FROM pg_trigger t
         WHERE t.tgrelid = tbl AND t.tgname = 'kaip_audit';
    END IF;
    IF v_statement AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tbl
                                   AND (c.relkind = 'p' OR c.relispartition
                                        OR EXISTS (SELECT 1 FROM pg_inherits i
                                                    WHERE i.inhparent = c.oid))) THEN
        RAISE EXCEPTION 'kaip_audit_table: % is partitioned, a partition or has inheritance children: per_statement => true would record other table names or miss rows; use the row trigger (per_statement => false)',
            tbl USING ERRCODE = 'feature_not_supported';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS kaip_audit ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS kaip_audit_changes ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS kaip_audit_truncate ON %s', tbl);
    IF v_statement THEN
        EXECUTE format('CREATE TRIGGER kaip_audit AFTER INSERT ON %s '
                       'REFERENCING NEW TABLE AS kaip_audit_new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION kaip_audit_statement(%L, %L, %L)',
                       tbl, v_pk, v_redact, v_personal);
        EXECUTE format('CREATE TRIGGER kaip_audit_changes AFTER UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION kaip_audit_row(%L, %L, %L)',
                       tbl, v_pk, v_redact, v_personal);
    ELSE
        EXECUTE format('CREATE TRIGGER kaip_audit AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION kaip_audit_row(%L, %L, %L)',
                       tbl, v_pk, v_redact, v_personal);
    END IF;
    EXECUTE format('CREATE TRIGGER kaip_audit_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION kaip_audit_row(%L, %L, %L)',
                   tbl, v_pk, v_redact, v_personal);
END
$$;
REVOKE EXECUTE ON FUNCTION kaip_audit_table(regclass, text[], text[], boolean) FROM PUBLIC;
