DROP TABLE proposals;
DROP TABLE calls;
