DROP TRIGGER IF EXISTS kaip_outbox_guard ON kaip_outbox;
DROP TRIGGER IF EXISTS kaip_outbox_guard_truncate ON kaip_outbox;
DROP FUNCTION IF EXISTS kaip_outbox_guard();
DROP FUNCTION IF EXISTS kaip_outbox_is_audit(text, text, jsonb, text);
-- The previous version's triggers write the trail with the caller's rights: under the
-- production layout, grant the login role INSERT on audit_operations and audit_changes
-- (and USAGE on audit_changes_seq_seq) again before using it.
GRANT EXECUTE ON FUNCTION kaip_audit_row(), kaip_audit_export(), kaip_audit_table(regclass, text[]) TO PUBLIC;
DROP FUNCTION IF EXISTS kaip_audit_lockdown();
DROP FUNCTION IF EXISTS kaip_audit_is_owner();
DROP FUNCTION IF EXISTS kaip_audit_settled();
ALTER FUNCTION kaip_audit_operation() SECURITY INVOKER RESET search_path;
ALTER FUNCTION kaip_audit_row() SECURITY INVOKER RESET search_path;
GRANT EXECUTE ON FUNCTION kaip_audit_operation() TO PUBLIC;
-- The previous definitions.
CREATE OR REPLACE FUNCTION kaip_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_op     uuid;
    v_pk     text[] := string_to_array(TG_ARGV[0], ',');
    v_redact text[] := coalesce(string_to_array(nullif(TG_ARGV[1], ''), ','), '{}');
    v_before jsonb;
    v_after  jsonb;
    v_key    jsonb;
    v_ids    text[];
    v_item   text;
    v_col    text;
    v_type   text;
BEGIN
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
CREATE OR REPLACE FUNCTION kaip_audit_operation() RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_op   uuid := nullif(current_setting('kaip.audit_op', true), '')::uuid;
    v_ctx  jsonb;
    v_service text;
BEGIN
    IF v_op IS NOT NULL THEN
        RETURN v_op;
    END IF;
    -- Set by the process; a malformed context fails the write (fail closed).
    v_ctx := coalesce(nullif(current_setting('kaip.audit', true), '')::jsonb, '{}'::jsonb);
    SELECT service INTO v_service FROM kaip_audit_settings;
    v_op := kaip_uuid_v7();
    INSERT INTO audit_operations (id, at, service, actor_sub, actor_role, trace_id, operation, input)
    VALUES (
        v_op,
        clock_timestamp(),
        coalesce(v_service, current_database()),
        coalesce(v_ctx->>'actor_sub', 'db:' || session_user),
        coalesce(v_ctx->>'actor_role', 'unknown'),
        v_ctx->>'trace_id',
        coalesce(v_ctx->>'operation', 'sql'),
        coalesce(v_ctx->'input', '{}'::jsonb)
    );
    -- Transaction-local: gone at commit or rollback (and with a rolled-back savepoint,
    -- together with the row above).
    PERFORM set_config('kaip.audit_op', v_op::text, true);
    RETURN v_op;
END
$$;
CREATE OR REPLACE FUNCTION kaip_audit_export() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_topic   text;
    v_ctx     jsonb;
    v_changes jsonb;
    v_data    jsonb;
    v_role    text;
    v_event   uuid := kaip_uuid_v7();
    v_headers jsonb := '{}'::jsonb;
    v_payload jsonb;
BEGIN
    SELECT topic INTO v_topic FROM kaip_audit_settings;
    IF v_topic IS NULL THEN
        RETURN NULL;  -- no service ever started on this database: nowhere to export to
    END IF;
    v_ctx := coalesce(nullif(current_setting('kaip.audit', true), '')::jsonb, '{}'::jsonb);
    IF v_ctx ? 'traceparent' THEN
        v_headers := jsonb_build_object('traceparent', v_ctx->>'traceparent');
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('table', table_name, 'key', row_key,
               'action', action, 'before', before, 'after', after) ORDER BY seq), '[]'::jsonb)
      INTO v_changes
      FROM audit_changes WHERE operation_id = NEW.id;
    v_data := jsonb_build_object(
        'operation_id', NEW.id, 'service', NEW.service, 'at', NEW.at,
        'actor_subject', NEW.actor_sub, 'actor_role', NEW.actor_role,
        'trace_id', NEW.trace_id, 'operation', NEW.operation, 'input', NEW.input,
        'changes', v_changes, 'changes_truncated', false);
    IF octet_length(v_data::text) > 900000 THEN
        SELECT coalesce(jsonb_agg(jsonb_build_object('table', table_name, 'key', row_key,
                   'action', action, 'before', NULL, 'after', NULL) ORDER BY seq), '[]'::jsonb)
          INTO v_changes
          FROM audit_changes WHERE operation_id = NEW.id;
        v_data := v_data || jsonb_build_object('changes', v_changes, 'changes_truncated', true,
                                               'input', '{}'::jsonb);
    END IF;
    v_role := CASE WHEN NEW.actor_role IN ('admin', 'officer', 'reviewer', 'consortium',
                                           'integration', 'system')
                   THEN NEW.actor_role ELSE 'system' END;
    v_payload := jsonb_build_object(
        'id', v_event, 'type', 'AuditRecorded', 'version', 1, 'occurred_at', NEW.at,
        'producer', NEW.service, 'aggregate_type', 'audit_operation', 'aggregate_id', NEW.id,
        'actor', jsonb_build_object('subject', NEW.actor_sub, 'role', v_role),
        'data', v_data);
    INSERT INTO kaip_outbox (event_id, topic, event_key, event_type, payload, headers)
    VALUES (v_event, v_topic, NEW.id::text, 'AuditRecorded', v_payload, v_headers);
    RETURN NULL;
END
$$;
ALTER FUNCTION kaip_audit_export() SECURITY INVOKER RESET search_path;
ALTER FUNCTION kaip_audit_operation() SECURITY INVOKER RESET search_path;
DROP TABLE IF EXISTS audit_commits;
DROP SEQUENCE IF EXISTS audit_commit_seq;
DROP FUNCTION IF EXISTS kaip_audit_commit_lock();
