DROP INDEX gpu_usage_reports_by_team_seq;
ALTER TABLE gpu_usage_reports DROP COLUMN seq;
