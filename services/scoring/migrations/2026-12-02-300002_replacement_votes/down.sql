DROP TABLE committee_votes;
ALTER TABLE calls DROP COLUMN replaces;
