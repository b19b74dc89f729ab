-- Meetings: scheduled rooms, who is invited, who came (join/leave), chat, documents, votes,
-- and the server's key for signing guest links. Keep migrations/postgres/ in step.

CREATE TABLE meetings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    chair_id INTEGER NOT NULL REFERENCES users (id),
    -- JSON array of names or e-mail addresses of invited guests.
    guests TEXT NOT NULL DEFAULT '[]',
    locked INTEGER NOT NULL DEFAULT 0,
    -- Set when the chair ended it for all.
    ended_ms INTEGER,
    -- Set once the e-mail reminder went out.
    reminded_ms INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE INDEX meetings_start ON meetings (start_ms);

CREATE TABLE meeting_invitees (
    meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (meeting_id, user_id)
);

-- One row per time someone was in the room.
CREATE TABLE meeting_attendance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    user_id INTEGER,
    guest INTEGER NOT NULL,
    role TEXT NOT NULL,
    address TEXT,
    joined_ms INTEGER NOT NULL,
    left_ms INTEGER
);
CREATE INDEX meeting_attendance_meeting ON meeting_attendance (meeting_id);

CREATE TABLE meeting_chat (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    user_id INTEGER,
    at_ms INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX meeting_chat_meeting ON meeting_chat (meeting_id);

-- Files shared in a meeting (the bytes are under the data directory, meetings/ID/).
CREATE TABLE meeting_documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploader TEXT NOT NULL,
    user_id INTEGER,
    at_ms INTEGER NOT NULL
);
CREATE INDEX meeting_documents_meeting ON meeting_documents (meeting_id);

-- Votes ("biểu quyết"): options is a JSON array of strings.
CREATE TABLE meeting_votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    options TEXT NOT NULL,
    secret INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    closed_ms INTEGER
);
CREATE INDEX meeting_votes_meeting ON meeting_votes (meeting_id);

-- One ballot per voter (a user, or a guest's attendance); option is NULL for a secret
-- ballot, whose choice is only in the tally.
CREATE TABLE meeting_ballots (
    vote_id INTEGER NOT NULL REFERENCES meeting_votes (id) ON DELETE CASCADE,
    voter TEXT NOT NULL,
    name TEXT NOT NULL,
    option_index INTEGER,
    cast_ms INTEGER NOT NULL,
    PRIMARY KEY (vote_id, voter)
);

CREATE TABLE meeting_tally (
    vote_id INTEGER NOT NULL REFERENCES meeting_votes (id) ON DELETE CASCADE,
    option_index INTEGER NOT NULL,
    votes INTEGER NOT NULL,
    PRIMARY KEY (vote_id, option_index)
);

-- Secrets the server made for itself (e.g. 'meeting_links': the HMAC key of guest links).
CREATE TABLE server_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
