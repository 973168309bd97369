-- The running total of a team's usage follows the order reports were recorded in, by a
-- database sequence (under the team's lock), not by the recording replica's wall clock: a
-- replica whose clock ran ahead made its report the "latest" for good, and every later
-- report's hours were dropped from the total.
ALTER TABLE gpu_usage_reports ADD COLUMN seq BIGSERIAL NOT NULL;
CREATE UNIQUE INDEX gpu_usage_reports_by_team_seq ON gpu_usage_reports (consortium_id, model, period, seq);
