-- The open reservations (`ledger_open_pending`, 2026-12-04-200003) written by the
-- database only (a review found the sweeper's due query trusting a table the login role
-- could edit):
--
-- 1. Its trigger function runs as its owner (SECURITY DEFINER, fixed search path), for
--    `ledger_transfers` only, and no other role may execute it (a trigger a session put on
--    a table of its own could otherwise write open rows); so the login role needs no right
--    to write the table, and `gpu_ledger_open_pending_lockdown()` leaves it SELECT only,
--    as `kaip_audit_lockdown()` does for the trail.
-- 2. Due rows already resolved are removed by `gpu_ledger_prune_open_pending()` (as the
--    owner too), which the sweeper calls each pass; its due query also skips any row whose
--    pending transfer has a resolution, so a stale row never yields a repeat expiry nor
--    takes a place in the pass's LIMIT.
-- 3. No foreign key to `ledger_transfers`: it added a check per pending transfer under the
--    pools' locks, for a table that only the trigger writes and `GET /invariants` checks.

ALTER TABLE ledger_open_pending DROP CONSTRAINT ledger_open_pending_pending_id_fkey;

CREATE OR REPLACE FUNCTION gpu_ledger_track_open_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_RELID <> 'public.ledger_transfers'::regclass OR TG_LEVEL <> 'STATEMENT'
       OR TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'gpu_ledger_track_open_pending follows inserts into ledger_transfers only, not % on %.%',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO ledger_open_pending (pending_id, timeout_at)
    SELECT n.id, n.timeout_at FROM ledger_new_transfers n WHERE n.kind = 'pending';
    DELETE FROM ledger_open_pending o
     USING ledger_new_transfers r
     WHERE r.pending_id IS NOT NULL AND o.pending_id = r.pending_id;
    RETURN NULL;
END
$$;
ALTER FUNCTION gpu_ledger_track_open_pending() SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp;
REVOKE EXECUTE ON FUNCTION gpu_ledger_track_open_pending() FROM PUBLIC;

-- Deletes the due open rows (timeout passed) whose pending transfer has a post, void or
-- expiry (none, unless the table was edited by hand); returns how many. Any role may call
-- it: it removes only what the immutable transfers say is resolved. Each due row is looked
-- up by the unique index on `pending_id` (a scalar subquery, which PostgreSQL runs per row
-- and never turns into a join that could read every transfer), so a call costs what is
-- due, not the history. A stale row not yet due stays until it is (`GET /invariants`
-- lists it meanwhile).
CREATE FUNCTION gpu_ledger_prune_open_pending() RETURNS bigint LANGUAGE sql
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH gone AS (
        DELETE FROM public.ledger_open_pending o
         WHERE o.timeout_at <= now()
           AND (SELECT true FROM public.ledger_transfers r WHERE r.pending_id = o.pending_id)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- Leaves every role but the owner SELECT only on the open reservations, whatever was granted
-- (default privileges give a login role DML on every new table). Run here; run it again, as
-- the owner, after granting rights on the ledger's tables.
CREATE FUNCTION gpu_ledger_open_pending_lockdown() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_grantee text;
BEGIN
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ledger_open_pending FROM PUBLIC;
    FOR v_grantee IN
        SELECT DISTINCT a.grantee::regrole::text
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.oid = 'ledger_open_pending'::regclass AND a.grantee <> 0
           AND a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ledger_open_pending FROM %s',
                       v_grantee);
    END LOOP;
    -- Column-level grants (a table-level REVOKE from a grantee takes its column grants too).
    FOR v_grantee IN
        SELECT DISTINCT x.grantee::regrole::text
          FROM pg_attribute a CROSS JOIN LATERAL aclexplode(a.attacl) x
          JOIN pg_class c ON c.oid = a.attrelid
         WHERE a.attrelid = 'ledger_open_pending'::regclass AND a.attacl IS NOT NULL
           AND x.grantee <> 0 AND x.grantee <> c.relowner AND x.privilege_type <> 'SELECT'
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, REFERENCES ON ledger_open_pending FROM %s', v_grantee);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION gpu_ledger_open_pending_lockdown() FROM PUBLIC;
SELECT gpu_ledger_open_pending_lockdown();
