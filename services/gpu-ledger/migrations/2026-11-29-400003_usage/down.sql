DROP TABLE IF EXISTS gpu_usage_reports;
