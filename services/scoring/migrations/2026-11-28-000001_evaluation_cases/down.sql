DROP TABLE evaluation_cases;
