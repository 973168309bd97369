DROP TABLE gpu_award_refusals;
