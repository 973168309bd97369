DROP TABLE score_sheet_versions;
DROP TABLE reviewer_versions;
DROP TABLE evaluation_config_versions;
