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

CREATE SEQUENCE scoring_record_seq AS BIGINT;

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

-- Rows from before keep the order they had: their timestamps, and at the same instant an
-- input before the decision or closure that read it (the old comparison was `<=`).
CREATE TEMPORARY TABLE scoring_record_order AS
SELECT row_number() OVER (ORDER BY at, boundary, tbl, n, k) AS seq, tbl, k
FROM (
    SELECT 'evaluation_config_versions' AS tbl, call_id::text || '/' || version AS k,
           version::bigint AS n, recorded_at AS at, 0 AS boundary
      FROM evaluation_config_versions
    UNION ALL
    SELECT 'score_sheet_versions', assignment_id::text || '/' || version, version, recorded_at, 0
      FROM score_sheet_versions
    UNION ALL
    SELECT 'tie_decisions', id::text, 0, decided_at, 0 FROM tie_decisions
    UNION ALL
    SELECT 'conflicts', reviewer_id || '/' || consortium_id::text, 0, recorded_at, 0 FROM conflicts
    UNION ALL
    SELECT 'blocked_assignments', call_id::text || '/' || stage || '/' || reviewer_id || '/' || case_id::text,
           0, recorded_at, 0
      FROM blocked_assignments
    UNION ALL
    SELECT 'assignments', id::text, 0, greatest(assigned_at, voided_at, conflict_noted_at), 0
      FROM assignments
    UNION ALL
    SELECT 'stage_closures', call_id::text || '/' || stage, stage, closed_at, 1 FROM stage_closures
    UNION ALL
    SELECT 'decision_versions', call_id::text || '/' || version, version, decided_at, 1
      FROM decision_versions
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

ALTER TABLE decision_versions ENABLE TRIGGER decision_versions_append_only;
ALTER TABLE tie_decisions ENABLE TRIGGER tie_decisions_append_only;

SELECT setval('scoring_record_seq', coalesce((SELECT max(seq) FROM scoring_record_order), 0) + 1, false);
DROP TABLE scoring_record_order;

ALTER TABLE evaluation_config_versions ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE score_sheet_versions ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE tie_decisions ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE conflicts ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE blocked_assignments ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE assignments ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE stage_closures ALTER COLUMN recorded_seq SET NOT NULL;
ALTER TABLE decision_versions ALTER COLUMN recorded_seq SET NOT NULL;

-- The database numbers each row as it is written (and an assignment again as it changes);
-- a value the process sends is overwritten, so no clock and no code can place a record.
CREATE FUNCTION scoring_number_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.recorded_seq := nextval('scoring_record_seq');
    RETURN NEW;
END $$;
CREATE TRIGGER evaluation_config_versions_numbered BEFORE INSERT ON evaluation_config_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER score_sheet_versions_numbered BEFORE INSERT ON score_sheet_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER tie_decisions_numbered BEFORE INSERT ON tie_decisions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER conflicts_numbered BEFORE INSERT OR UPDATE ON conflicts
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER blocked_assignments_numbered BEFORE INSERT OR UPDATE ON blocked_assignments
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER assignments_numbered BEFORE INSERT OR UPDATE ON assignments
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER stage_closures_numbered BEFORE INSERT ON stage_closures
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();
CREATE TRIGGER decision_versions_numbered BEFORE INSERT ON decision_versions
    FOR EACH ROW EXECUTE FUNCTION scoring_number_record();

CREATE INDEX tie_decisions_call_stage_seq ON tie_decisions (call_id, stage, recorded_seq);
