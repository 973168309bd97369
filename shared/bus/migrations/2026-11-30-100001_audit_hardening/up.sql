-- The audit trail, hardened (a review of the first version found these):
--
-- 1. Tamper-proof with the production role layout. The trigger functions run as the
--    trail's owner (SECURITY DEFINER), so the service's login role needs no right to write
--    the trail at all: `kaip_audit_lockdown()`, run by the owner at every start, leaves it
--    SELECT only. It also cannot forge the trail's export: an `AuditRecorded` row in the
--    outbox can only be written by the trail's owner (the export trigger), and no outbox
--    row's content can be changed once written. With migrations run by a separate owner
--    role (`database.migration_url`), the login role owns nothing: it cannot drop or
--    disable a trigger either. See README "The audit trail".
-- 2. Pages in commit order. An operation's `at` is the time of its first change; a slow
--    transaction can commit after a later one, so a reader paging by `at` could pass it
--    before it became visible and never see it. Each operation now gets a `sequence` at
--    commit (in `audit_commits`), taken under a shared advisory lock held until the commit
--    is visible; a reader takes that lock exclusively for an instant to learn the highest
--    sequence whose transaction has finished, and reads only up to it. So an entry never
--    appears behind a cursor that was handed out.
-- 3. Exports of any size. An operation whose record exceeds one message is exported as
--    several `AuditRecorded` events (`part` of `parts`), each under ~700 kB, together
--    carrying every change.

-- 2. The commit order.
CREATE SEQUENCE audit_commit_seq;
CREATE TABLE audit_commits (
    sequence     BIGINT PRIMARY KEY,
    operation_id UUID NOT NULL UNIQUE REFERENCES audit_operations (id)
);
-- Operations recorded before this migration, in the order they were recorded.
INSERT INTO audit_commits (sequence, operation_id)
SELECT nextval('audit_commit_seq'), id FROM (SELECT id FROM audit_operations ORDER BY at, id) o;
CREATE TRIGGER audit_commits_append_only BEFORE UPDATE OR DELETE ON audit_commits
    FOR EACH ROW EXECUTE FUNCTION kaip_audit_refuse();
CREATE TRIGGER audit_commits_no_truncate BEFORE TRUNCATE ON audit_commits
    FOR EACH STATEMENT EXECUTE FUNCTION kaip_audit_refuse();

-- The key of the commit-order lock (a bigint advisory lock; kaip-service's
-- `audit::COMMIT_ORDER_LOCK` is the same number).
CREATE FUNCTION kaip_audit_commit_lock() RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT 4702111234474983745::bigint  -- 0x4141_5544_4954_5341, "AAUDITSA"
$$;

-- The highest sequence whose transaction has finished: every operation with a sequence up
-- to it is visible to a statement started after this returns, or was rolled back. Takes
-- the commit-order lock exclusively for an instant, by trying (a waiting exclusive request
-- would queue every new commit behind it): commits hold it only while they finish, so a
-- try succeeds within milliseconds. Call it as a statement of its own, outside any
-- transaction, so the lock is gone when it returns.
CREATE FUNCTION kaip_audit_settled() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_last bigint;
    v_deadline timestamptz := clock_timestamp() + interval '5 seconds';
BEGIN
    WHILE NOT pg_try_advisory_xact_lock(kaip_audit_commit_lock()) LOOP
        IF clock_timestamp() > v_deadline THEN
            RAISE EXCEPTION 'the audit trail''s commits did not settle within 5 s'
                USING ERRCODE = 'lock_not_available';
        END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO v_last FROM public.audit_commit_seq;
    RETURN v_last;
END
$$;

-- 3. The export, at commit: the operation's events, then its sequence. Changes are cut into
-- parts of at most ~400 kB by a running total (each change at most ~200 kB: a larger row is
-- exported as its table, key and action), and the input is at most ~200 kB, so every
-- message stays under ~800 kB, below Kafka's default 1 MB.
CREATE OR REPLACE FUNCTION kaip_audit_export() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_topic     text;
    v_ctx       jsonb;
    v_seq       bigint;
    v_base      jsonb;
    v_chunks    jsonb[];
    v_truncated boolean;
    v_role      text;
    v_event     uuid;
    v_headers   jsonb := '{}'::jsonb;
    v_parts     int;
    c_change    constant int := 200000;
    c_part      constant int := 400000;
BEGIN
    -- Only at commit, once every change is written: `SET CONSTRAINTS ... IMMEDIATE` would
    -- fire it at the operation's first change, exporting none of them.
    IF pg_trigger_depth() > 1 THEN
        RAISE EXCEPTION 'the audit trail is exported at commit: SET CONSTRAINTS IMMEDIATE is refused'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- A change after this would be in the trail but not in the export: refused
    -- (kaip_audit_row).
    PERFORM set_config('kaip.audit_exported', NEW.id::text, true);

    SELECT array_agg(changes ORDER BY part), coalesce(bool_or(cut), false)
      INTO v_chunks, v_truncated
      FROM (SELECT (before / c_part) AS part, jsonb_agg(j ORDER BY seq) AS changes,
                   bool_or(cut) AS cut
              FROM (SELECT seq, j, cut,
                           coalesce(sum(size) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING
                                                    AND 1 PRECEDING), 0) AS before
                      FROM (SELECT seq,
                                   CASE WHEN octet_length(full_j::text) > c_change
                                        THEN full_j || '{"before": null, "after": null}'::jsonb
                                        ELSE full_j END AS j,
                                   octet_length(full_j::text) > c_change AS cut,
                                   least(octet_length(full_j::text), c_change) AS size
                              FROM (SELECT seq, jsonb_build_object(
                                               'table', table_name, 'key', row_key,
                                               'action', action, 'before', before,
                                               'after', after) AS full_j
                                      FROM public.audit_changes
                                     WHERE operation_id = NEW.id) c) t) s
             GROUP BY 1) p;
    v_chunks := coalesce(v_chunks, ARRAY['[]'::jsonb]);
    v_parts := cardinality(v_chunks);

    -- The sequence last, under the lock held until this transaction is visible (see
    -- kaip_audit_settled), so commits in flight hold it as briefly as possible.
    PERFORM pg_advisory_xact_lock_shared(kaip_audit_commit_lock());
    v_seq := nextval('public.audit_commit_seq');
    INSERT INTO public.audit_commits (sequence, operation_id) VALUES (v_seq, NEW.id);

    SELECT topic INTO v_topic FROM public.kaip_audit_settings;
    IF v_topic IS NULL THEN
        RETURN NULL;  -- no service ever started on this database: nowhere to export to
    END IF;
    v_ctx := coalesce(nullif(current_setting('kaip.audit', true), '')::jsonb, '{}'::jsonb);
    IF v_ctx ? 'traceparent' THEN
        v_headers := jsonb_build_object('traceparent', v_ctx->>'traceparent');
    END IF;
    v_base := jsonb_build_object(
        'operation_id', NEW.id, 'service', NEW.service, 'at', NEW.at,
        'actor_subject', NEW.actor_sub, 'actor_role', NEW.actor_role,
        'trace_id', NEW.trace_id, 'operation', NEW.operation, 'input', NEW.input,
        'sequence', v_seq);
    IF octet_length(v_base::text) > c_change THEN
        v_base := v_base || jsonb_build_object('input', '{}'::jsonb);
        v_truncated := true;
    END IF;
    v_role := CASE WHEN NEW.actor_role IN ('admin', 'officer', 'reviewer', 'consortium',
                                           'integration', 'system')
                   THEN NEW.actor_role ELSE 'system' END;
    FOR i IN 1 .. v_parts LOOP
        v_event := kaip_uuid_v7();
        INSERT INTO public.kaip_outbox (event_id, topic, event_key, event_type, payload, headers)
        VALUES (v_event, v_topic, NEW.id::text, 'AuditRecorded',
                jsonb_build_object(
                    'id', v_event, 'type', 'AuditRecorded', 'version', 1,
                    'occurred_at', NEW.at, 'producer', NEW.service,
                    'aggregate_type', 'audit_operation', 'aggregate_id', NEW.id,
                    'actor', jsonb_build_object('subject', NEW.actor_sub, 'role', v_role),
                    'data', v_base || jsonb_build_object(
                        'changes', v_chunks[i], 'changes_truncated', v_truncated,
                        'part', i, 'parts', v_parts)),
                v_headers);
    END LOOP;
    RETURN NULL;
END
$$;

-- The current transaction's operation, created on its first audited change. The id kept
-- in `kaip.audit_op` is trusted only if that operation was created by this transaction and
-- not exported yet: a session could set the variable itself, to append its changes to
-- someone else's record.
CREATE OR REPLACE FUNCTION kaip_audit_operation() RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_op   uuid := nullif(current_setting('kaip.audit_op', true), '')::uuid;
    v_ctx  jsonb;
    v_service text;
BEGIN
    IF v_op IS NOT NULL
       AND EXISTS (SELECT 1 FROM audit_operations WHERE id = v_op AND txid = txid_current())
       -- Not yet exported (a `SET CONSTRAINTS ... IMMEDIATE` can export it before commit):
       -- a later change starts an operation of its own, so every change is exported.
       AND NOT EXISTS (SELECT 1 FROM audit_commits WHERE operation_id = v_op) THEN
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
-- Called by the row trigger only: a direct call would record an operation with no change.
REVOKE EXECUTE ON FUNCTION kaip_audit_operation() FROM PUBLIC;

-- The row trigger, as before, for the service's own tables only.
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

-- 1. The trigger functions run as the trail's owner, with a fixed search path.
ALTER FUNCTION kaip_audit_operation() SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION kaip_audit_row() SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION kaip_audit_export() SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
-- Fired by their triggers only (a trigger's function is checked when the trigger is created,
-- by the role that owns the table); called directly, or from a trigger a session put on a
-- table of its own, they would record what never happened.
REVOKE EXECUTE ON FUNCTION kaip_audit_row(), kaip_audit_export(), kaip_audit_table(regclass, text[])
    FROM PUBLIC;

-- Whether the current role may write the trail and its export: its owner (or a member).
CREATE FUNCTION kaip_audit_is_owner() RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT pg_has_role(current_user, relowner, 'MEMBER')
      FROM pg_catalog.pg_class WHERE oid = 'public.audit_operations'::regclass
$$;

-- The outbox: no one but the trail's owner writes an `AuditRecorded` (by column, by payload
-- type, or on an audit topic), deletes one before it was sent, truncates the outbox, or
-- changes what any row says. (Its delivery state, `sent_at`, stays the relay's, which
-- runs as the login role: see README "The audit trail" for what that leaves open.)
CREATE FUNCTION kaip_outbox_is_audit(v_type text, v_topic text, v_payload jsonb, v_audit_topic text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT v_type = 'AuditRecorded' OR v_payload->>'type' = 'AuditRecorded'
        OR v_topic = v_audit_topic OR v_topic LIKE '%.audit'
$$;

CREATE FUNCTION kaip_outbox_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_topic text;
BEGIN
    -- The owner may (an operator shrinking a poison event so its key can move on).
    IF public.kaip_audit_is_owner() THEN
        RETURN coalesce(NEW, OLD);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.event_id, NEW.topic, NEW.event_key, NEW.event_type, NEW.payload, NEW.headers)
           IS DISTINCT FROM
           (OLD.event_id, OLD.topic, OLD.event_key, OLD.event_type, OLD.payload, OLD.headers) THEN
            RAISE EXCEPTION 'an outbox event cannot be changed once written (event %)', OLD.event_id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'only the audit trail''s owner may truncate the outbox'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT topic INTO v_topic FROM public.kaip_audit_settings;
    IF TG_OP = 'INSERT'
       AND public.kaip_outbox_is_audit(NEW.event_type, NEW.topic, NEW.payload, v_topic) THEN
        RAISE EXCEPTION 'only the audit trail writes its export (% on %)', NEW.event_type, NEW.topic
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' AND OLD.sent_at IS NULL
       AND public.kaip_outbox_is_audit(OLD.event_type, OLD.topic, OLD.payload, v_topic) THEN
        RAISE EXCEPTION 'the audit trail''s export cannot be deleted before it is sent (event %)',
            OLD.event_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN coalesce(NEW, OLD);
END
$$;
CREATE TRIGGER kaip_outbox_guard BEFORE INSERT OR UPDATE OR DELETE ON kaip_outbox
    FOR EACH ROW EXECUTE FUNCTION kaip_outbox_guard();
CREATE TRIGGER kaip_outbox_guard_truncate BEFORE TRUNCATE ON kaip_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION kaip_outbox_guard();

-- Leaves every role but the owner SELECT only on the trail, whatever was granted (default
-- privileges give a login role DML on every new table). Run by the owner at each start
-- (kaip-service), and here.
CREATE FUNCTION kaip_audit_lockdown() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_grantee text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['audit_operations', 'audit_changes', 'audit_commits',
                                   'kaip_audit_settings'] LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %I FROM PUBLIC',
                       v_table);
        FOR v_grantee IN
            SELECT DISTINCT a.grantee::regrole::text
              FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = v_table::regclass AND a.grantee <> 0 AND a.grantee <> c.relowner
               AND a.privilege_type <> 'SELECT'
        LOOP
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %I FROM %s',
                           v_table, v_grantee);
        END LOOP;
    END LOOP;
    FOR v_grantee IN
        SELECT DISTINCT a.grantee::regrole::text
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.oid = 'audit_commit_seq'::regclass AND a.grantee <> 0 AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE ALL ON SEQUENCE audit_commit_seq FROM %s', v_grantee);
    END LOOP;
    FOR v_grantee IN
        SELECT DISTINCT a.grantee::regrole::text
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.oid = 'audit_changes_seq_seq'::regclass AND a.grantee <> 0 AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE ALL ON SEQUENCE audit_changes_seq_seq FROM %s', v_grantee);
    END LOOP;
    -- Column-level grants (a table-level REVOKE from a grantee takes its column grants too).
    FOR v_table, v_grantee IN
        SELECT DISTINCT c.relname::text, x.grantee::regrole::text
          FROM pg_class c
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attacl IS NOT NULL
          CROSS JOIN LATERAL aclexplode(a.attacl) x
         WHERE c.relname IN ('audit_operations', 'audit_changes', 'audit_commits',
                             'kaip_audit_settings')
           AND c.relnamespace = 'public'::regnamespace AND x.grantee <> 0
           AND x.grantee <> c.relowner AND x.privilege_type <> 'SELECT'
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, REFERENCES ON %I FROM %s', v_table, v_grantee);
    END LOOP;
    -- No one else creates objects in public (PostgreSQL 15's default; not on a cluster
    -- upgraded from an older one): an object there could be resolved, by name or by a
    -- better-matching overload, inside the trail's functions.
    BEGIN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'kaip_audit_lockdown: not the owner of schema public, CREATE on it left as is';
    END;
    EXECUTE 'REVOKE EXECUTE ON FUNCTION kaip_audit_operation() FROM PUBLIC';
    FOR v_grantee IN
        SELECT DISTINCT a.grantee::regrole::text
          FROM pg_proc p, aclexplode(p.proacl) a
         WHERE p.oid = 'kaip_audit_operation()'::regprocedure AND a.grantee <> 0
           AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION kaip_audit_operation() FROM %s', v_grantee);
    END LOOP;
END
$$;
SELECT kaip_audit_lockdown();
