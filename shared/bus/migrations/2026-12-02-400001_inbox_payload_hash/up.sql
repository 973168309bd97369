-- What each applied event said (SHA-256 over its type, version, producer, aggregate and
-- data), so that another event sent under an id already applied is told apart from a
-- redelivery of the same one. Rows from before this column have none and are compared
-- by id only, as before.
ALTER TABLE kaip_inbox ADD COLUMN payload_sha256 BYTEA;
