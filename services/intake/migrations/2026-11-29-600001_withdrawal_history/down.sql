DROP TABLE proposal_withdrawals;
