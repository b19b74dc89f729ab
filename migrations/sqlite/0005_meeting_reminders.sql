-- Who a meeting's e-mail reminder has reached, so that when the relay refuses one message
-- only that one is tried again (the others are not sent twice). Keep migrations/sqlite/
-- and migrations/postgres/ in step.

CREATE TABLE meeting_reminders (
    meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    -- The recipient's address, lower-cased.
    address TEXT NOT NULL,
    sent_ms INTEGER NOT NULL,
    PRIMARY KEY (meeting_id, address)
);
