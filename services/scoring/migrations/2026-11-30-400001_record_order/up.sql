-- The order in which a decision's inputs were recorded, assigned by the database.
--
-- "Recorded before the proposal" (which tie decisions a stage's close or a proposal rests
-- on, whether anything changed between a proposal and its publication) used to be decided
-- by comparing `*_at` timestamps the service processes wrote from their own clocks, which
-- can go backwards or differ across replicas. Every row a decision reads, and every
-- decision and stage closure, now carries `recorded_seq` from one database sequence,
-- assigned by a trigger (whatever the process writes), so records of all these tables are
-- ordered against each other by the database alone. The `*_at` columns stay what they
-- are: when it happened by the writer's clock, for people to read, never to order by.
--
-- The sequence orders commits too, for one call: every writer of a call's inputs holds the
-- call's row (FOR UPDATE, or FOR SHARE for a score sheet) before it inserts, and proposing
-- or publishing takes it FOR UPDATE, so no input can get a lower number than a proposal and
-- commit after it.
--
-- The sequence MUST keep CACHE 1 (the default, asserted by a test): with a cache, each
-- session hands out numbers from its own block, and a row written later by one session
-- could get a lower number than one written earlier by another.

CREATE SEQUENCE scoring_record_seq AS BIGINT CACHE 1;

ALTER TABLE evaluation_config_versions ADD COLUMN recorded_seq BIGINT;
ALTER TABLE score_sheet_versions ADD COLUMN recorded_seq BIGINT;
ALTER TABLE tie_decisions ADD COLUMN recorded_seq BIGINT;
ALTER TABLE conflicts ADD COLUMN recorded_seq BIGINT;
ALTER TABLE blocked_assignments ADD COLUMN recorded_seq BIGINT;
-- An assignment's number is that of its latest change (assigned, voided, marked with a
-- conflict): a void changes which sheets count.
ALTER TABLE assignments ADD COLUMN recorded_seq BIGINT;
ALTER TABLE stage_closures ADD COLUMN recorded_seq BIGINT;
ALTER TABLE decision_versions ADD COLUMN recorded_seq BIGINT;
-- A case's number is that of its latest change of status: a finalist's withdrawal changes
-- who can be selected (and what a departure or explanation may name).
ALTER TABLE evaluation_cases ADD COLUMN recorded_seq BIGINT;

-- Rows from before keep the order they had: their timestamps, and at the same instant an
-- input before the decision or closure that read it (the old comparison was `<=`).
-- Two exceptions, because those timestamps came from the writers' clocks:
-- - a call not yet published: its proposals come before everything (`early`), so none of
--   them can be published without being proposed again on the inputs as they stand (a tie
--   decided after a proposal but stamped before it by a slow replica would otherwise let
--   the stale proposal through);
-- - the cases' statuses, whose changes were never timed: after everything else (`early`
--   -1), so they are after any proposal from before.
-- For a call published before this migration the verifier cannot tell what was recorded
-- between its proposal and its publication; `scoring_numbered_since()` (below) is the first
-- number the database handed out itself, and it says so for any publication before it.
CREATE TEMPORARY TABLE scoring_record_order AS
SELECT row_number() OVER (ORDER BY early DESC, at, boundary, tbl, n, k) AS seq, tbl, k
FROM (
    SELECT 'evaluation_config_versions' AS tbl, call_id::text || '/' || version AS k,
           version::bigint AS n, recorded_at AS at, 0 AS boundary, 0 AS early
      FROM evaluation_config_versions
    UNION ALL
    SELECT 'score_sheet_versions', assignment_id::text || '/' || version, version, recorded_at, 0, 0
      FROM score_sheet_versions
    UNION ALL
    SELECT 'tie_decisions', id::text, 0, decided_at, 0, 0 FROM tie_decisions
    UNION ALL
    SELECT 'conflicts', reviewer_id || '/' || consortium_id::text, 0, recorded_at, 0, 0 FROM conflicts
    UNION ALL
    SELECT 'blocked_assignments', call_id::text || '/' || stage || '/' || reviewer_id || '/' || case_id::text,
           0, recorded_at, 0, 0
      FROM blocked_assignments
    UNION ALL
    SELECT 'assignments', id::text, 0, greatest(assigned_at, voided_at, conflict_noted_at), 0, 0
      FROM assignments
    UNION ALL
    SELECT 'stage_closures', call_id::text || '/' || stage, stage, closed_at, 1, 0 FROM stage_closures
    UNION ALL
    SELECT 'decision_versions', v.call_id::text || '/' || v.version, v.version, v.decided_at, 1,
           CASE WHEN c.published_at IS NULL THEN 1 ELSE 0 END
      FROM decision_versions v JOIN calls c ON c.id = v.call_id
    UNION ALL
    SELECT 'evaluation_cases', id::text, 0, 'infinity'::timestamptz, 0, -1 FROM evaluation_cases
) AS records;

-- The backfill is the only change these append-only records ever take.
ALTER TABLE decision_versions DISABLE TRIGGER decision_versions_append_only;
ALTER TABLE tie_decisions DISABLE TRIGGER tie_decisions_append_only;

UPDATE evaluation_config_versions r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'evaluation_config_versions' AND o.k = r.call_id::text || '/' || r.version;
UPDATE score_sheet_versions r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'score_sheet_versions' AND o.k = r.assignment_id::text || '/' || r.version;
UPDATE tie_decisions r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'tie_decisions' AND o.k = r.id::text;
UPDATE conflicts r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'conflicts' AND o.k = r.reviewer_id || '/' || r.consortium_id::text;
UPDATE blocked_assignments r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'blocked_assignments'
   AND o.k = r.call_id::text || '/' || r.stage || '/' || r.reviewer_id || '/' || r.case_id::text;
UPDATE assignments r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'assignments' AND o.k = r.id::text;
UPDATE stage_closures r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'stage_closures' AND o.k = r.call_id::text || '/' || r.stage;
UPDATE decision_versions r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'decision_versions' AND o.k = r.call_id::text || '/' || r.version;
UPDATE evaluation_cases r SET recorded_seq = o.seq FROM scoring_record_order o
 WHERE o.tbl = 'evaluation_cases' AND o.k = r.id::text;

ALTER TABLE decision_versions ENABLE TRIGGER decision_versions_append_only;
ALTER TABLE tie_decisions ENABLE TRIGGER tie_decisions_append_only;

SELECT setval('scoring_record_seq', coalesce((SELECT max(seq) FROM scoring_record_order), 0) + 1, false);
-- The first number the database hands out itself: rows below it were numbered by this
-- backfill, from the writers' clocks.
DO $$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION scoring_numbered_since() RETURNS bigint LANGUAGE sql IMMUTABLE AS %L',
        'SELECT ' || (coalesce((SELECT max(seq) FROM scoring_record_order), 0) + 1)::text || '::bigint');
END $$;
DROP TABLE scoring_record_order;

ALTER TABLE evaluation_config_versions ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE score_sheet_versions ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE tie_decisions ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE conflicts ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE blocked_assignments ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE assignments ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE stage_closures ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE decision_versions ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE evaluation_cases ALTER COLUMN recorded_seq SET NOT NULL;

-- The database numbers each row as it is written; a value the process sends is
-- overwritten, so no clock and no code can place a record.
CREATE FUNCTION scoring_number_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.recorded_seq := nextval('scoring_record_seq');
    RETURN NEW;
END $$;
-- Once numbered, a row keeps its number: an UPDATE that changes it is refused. A row whose
-- change matters to a decision is numbered again, as that change, only when one of the
-- columns named in the trigger's arguments actually changes (an assignment voided or
-- marked, a case's status): a no-op UPDATE moves nothing.
CREATE FUNCTION scoring_keep_record_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text;
BEGIN
    IF NEW.recorded_seq IS DISTINCT FROM OLD.recorded_seq THEN
        RAISE EXCEPTION '%.recorded_seq is assigned by the database and never changes: UPDATE refused',
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH col IN ARRAY coalesce(TG_ARGV, ARRAY[]::text[]) LOOP
        IF to_jsonb(NEW) -> col IS DISTINCT FROM to_jsonb(OLD) -> col THEN
            NEW.recorded_seq := nextval('scoring_record_seq');
            RETURN NEW;
        END IF;
    END LOOP;
    RETURN NEW;
END $$;
CREATE TRIGGER evaluation_config_versions_numbered BEFORE INSERT ON evaluation_config_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER score_sheet_versions_numbered BEFORE INSERT ON score_sheet_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER tie_decisions_numbered BEFORE INSERT ON tie_decisions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER conflicts_numbered BEFORE INSERT ON conflicts
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER conflicts_renumbered BEFORE UPDATE ON conflicts
    FOR EACH ROW EXECUTE FUNCTION scoring_keep_record_number();
CREATE TRIGGER blocked_assignments_numbered BEFORE INSERT ON blocked_assignments
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER blocked_assignments_renumbered BEFORE UPDATE ON blocked_assignments
    FOR EACH ROW EXECUTE FUNCTION scoring_keep_record_number();
CREATE TRIGGER assignments_numbered BEFORE INSERT ON assignments
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER assignments_renumbered BEFORE UPDATE ON assignments
    FOR EACH ROW EXECUTE FUNCTION scoring_keep_record_number('voided_at', 'conflict_noted_at');
CREATE TRIGGER stage_closures_numbered BEFORE INSERT ON stage_closures
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER decision_versions_numbered BEFORE INSERT ON decision_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER evaluation_cases_numbered BEFORE INSERT ON evaluation_cases
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER evaluation_cases_renumbered BEFORE UPDATE ON evaluation_cases
    FOR EACH ROW EXECUTE FUNCTION scoring_keep_record_number('status');
-- Settings, sheets and closures are versions and events: nothing updates or deletes them
-- (a change is a new version), so the database refuses to, and their numbers stand.
CREATE TRIGGER evaluation_config_versions_append_only BEFORE UPDATE OR DELETE ON evaluation_config_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_refuse_decision_change();
CREATE TRIGGER score_sheet_versions_append_only BEFORE UPDATE OR DELETE ON score_sheet_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_refuse_decision_change();
CREATE TRIGGER stage_closures_append_only BEFORE UPDATE OR DELETE ON stage_closures
    FOR EACH ROW EXECUTE FUNCTION scoring_refuse_decision_change();

CREATE INDEX tie_decisions_call_stage_seq ON tie_decisions (call_id, stage, recorded_seq);
