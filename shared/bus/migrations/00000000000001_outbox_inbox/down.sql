DROP TABLE kaip_inbox;
DROP TABLE kaip_outbox;
