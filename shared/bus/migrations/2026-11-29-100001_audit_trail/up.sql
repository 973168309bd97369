-- The audit trail, present in every service's database.
--
-- One `audit_operations` row per audited transaction (who, when, which trace, which
-- operation with which input) and one `audit_changes` row per domain row it wrote (before
-- and after). Rows are written by triggers on the domain tables a service opts in with
-- `SELECT kaip_audit_table('<table>')`, in the same transaction as the change, so a change
-- can never commit without its record, and a rolled-back request leaves none. Handlers
-- write nothing themselves: the process sets a context (`kaip.audit`, JSON) on the
-- connection before the work and clears it afterwards (kaip-service's `AppState::db`, the
-- bus consumer). A change made with no context (someone in psql) is still recorded, as
-- actor `db:<session user>` with role `unknown`.
--
-- Append-only: UPDATE, DELETE and TRUNCATE of the trail are refused by triggers (which bind
-- every role that does not own the tables, and the owner unless it disables them), and
-- revoked from PUBLIC. In production the service's login role must not own these tables
-- nor be a superuser; see README "The audit trail".

-- UUIDv7 (time-ordered), as the platform's other ids; PostgreSQL 15 has no uuidv7().
CREATE FUNCTION kaip_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- Where this database's trail is exported: written by the service at start (the topic
-- carries the deployment's prefix, which the database cannot know).
CREATE TABLE kaip_audit_settings (
    id       BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    service  TEXT NOT NULL,
    topic    TEXT NOT NULL
);

CREATE TABLE audit_operations (
    id          UUID PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    service     TEXT NOT NULL,
    actor_sub   TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    trace_id    TEXT,
    operation   TEXT NOT NULL,
    input       JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- The transaction that wrote it (diagnostics: ties an operation to server logs).
    txid        BIGINT NOT NULL DEFAULT txid_current()
);
CREATE INDEX audit_operations_at ON audit_operations (at, id);
CREATE INDEX audit_operations_actor ON audit_operations (actor_sub, at, id);

CREATE TABLE audit_changes (
    seq          BIGSERIAL PRIMARY KEY,
    operation_id UUID NOT NULL REFERENCES audit_operations (id),
    table_name   TEXT NOT NULL,
    -- The primary key of the row, as {column: value}.
    row_key      JSONB NOT NULL,
    -- The primary key's and the row's references' (`id`, `*_id`) values as text: what
    -- `entity` filters match (GIN-indexed).
    entity_ids   TEXT[] NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('insert', 'update', 'delete', 'truncate')),
    before       JSONB,
    after        JSONB
);
CREATE INDEX audit_changes_operation ON audit_changes (operation_id, seq);
CREATE INDEX audit_changes_entity ON audit_changes USING gin (entity_ids);
CREATE INDEX audit_changes_table ON audit_changes (table_name, operation_id);

-- Append-only.
CREATE FUNCTION kaip_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_operations_append_only BEFORE UPDATE OR DELETE ON audit_operations
    FOR EACH ROW EXECUTE FUNCTION kaip_audit_refuse();
CREATE TRIGGER audit_operations_no_truncate BEFORE TRUNCATE ON audit_operations
    FOR EACH STATEMENT EXECUTE FUNCTION kaip_audit_refuse();
CREATE TRIGGER audit_changes_append_only BEFORE UPDATE OR DELETE ON audit_changes
    FOR EACH ROW EXECUTE FUNCTION kaip_audit_refuse();
CREATE TRIGGER audit_changes_no_truncate BEFORE TRUNCATE ON audit_changes
    FOR EACH STATEMENT EXECUTE FUNCTION kaip_audit_refuse();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_operations, audit_changes FROM PUBLIC;

-- The current transaction's operation, created on its first audited change.
CREATE FUNCTION kaip_audit_operation() RETURNS uuid LANGUAGE plpgsql AS $$
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

-- A redacted column's value: its digest and size instead of its bytes.
CREATE FUNCTION kaip_audit_digest(v_value text, v_type text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_bytes bytea;
BEGIN
    IF v_value IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_type = 'bytea' THEN
        v_bytes := decode(substr(v_value, 3), 'hex');  -- to_jsonb writes bytea as \x<hex>
    ELSE
        v_bytes := convert_to(v_value, 'UTF8');
    END IF;
    RETURN jsonb_build_object('redacted', true, 'sha256', encode(sha256(v_bytes), 'hex'),
                              'bytes', octet_length(v_bytes));
END
$$;

-- The row trigger: TG_ARGV[0] = primary key columns, TG_ARGV[1] = redacted columns as
-- `name:type` (both comma-separated; written by kaip_audit_table).
CREATE FUNCTION kaip_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- Opts a domain table into the trail. `redact` names columns recorded as a digest (sha256
-- and size) instead of their value: document bytes, secrets. Call it again after changing
-- the table's primary key. Idempotent.
CREATE FUNCTION kaip_audit_table(tbl regclass, redact text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_pk     text;
    v_redact text;
    v_found  int;
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
    EXECUTE format('DROP TRIGGER IF EXISTS kaip_audit ON %s', tbl);
    EXECUTE format('CREATE TRIGGER kaip_audit AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION kaip_audit_row(%L, %L)', tbl, v_pk, v_redact);
    EXECUTE format('DROP TRIGGER IF EXISTS kaip_audit_truncate ON %s', tbl);
    EXECUTE format('CREATE TRIGGER kaip_audit_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION kaip_audit_row(%L, %L)', tbl, v_pk, v_redact);
END
$$;

-- Export: at commit (a deferred constraint trigger), each operation becomes one
-- `AuditRecorded` event in the outbox, in the same transaction, on the service's audit
-- topic (never on its events topic, so the services' consumers never see it). An event
-- over ~900 kB (Kafka's default limit is 1 MB) carries its changes without before/after,
-- flagged `changes_truncated`; the full record stays queryable.
CREATE FUNCTION kaip_audit_export() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE CONSTRAINT TRIGGER audit_operations_export AFTER INSERT ON audit_operations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION kaip_audit_export();
