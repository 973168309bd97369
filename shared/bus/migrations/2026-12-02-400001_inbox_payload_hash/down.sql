ALTER TABLE kaip_inbox DROP COLUMN payload_sha256;
