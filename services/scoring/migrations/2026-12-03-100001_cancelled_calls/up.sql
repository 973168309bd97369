-- A replacement call intake cancelled (`ReplacementCallCancelled`): set once, from the event;
-- its later steps (proposing, voting, publishing) are refused.
ALTER TABLE calls ADD COLUMN cancelled_at TIMESTAMPTZ;
