-- Who wrote each timeline entry (status.timeline[].author): the user for
-- the entries users append, the caller for those the operator appends on a
-- caller's behalf over HTTP, empty for the operator's own and for entries
-- mirrored before the column existed. Additive, and safe to run again.
ALTER TABLE incident_events ADD COLUMN IF NOT EXISTS author text NOT NULL DEFAULT '';
