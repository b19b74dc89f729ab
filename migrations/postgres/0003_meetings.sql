-- Meetings: scheduled rooms, who is invited, who came (join/leave), chat, documents, votes,
-- and the server's key for signing guest links. Keep migrations/sqlite/ in step.

CREATE TABLE meetings (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    chair_id BIGINT NOT NULL REFERENCES users (id),
    -- JSON array of names or e-mail addresses of invited guests.
    guests TEXT NOT NULL DEFAULT '[]',
    locked BIGINT NOT NULL DEFAULT 0,
    -- Set when the chair ended it for all.
    ended_ms BIGINT,
    -- Set once the e-mail reminder went out.
    reminded_ms BIGINT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX meetings_start ON meetings (start_ms);

CREATE TABLE meeting_invitees (
    meeting_id BIGINT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (meeting_id, user_id)
);

-- One row per time someone was in the room.
CREATE TABLE meeting_attendance (
    id BIGSERIAL PRIMARY KEY,
    meeting_id BIGINT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    user_id BIGINT,
    guest BIGINT NOT NULL,
    role TEXT NOT NULL,
    address TEXT,
    joined_ms BIGINT NOT NULL,
    left_ms BIGINT
);
CREATE INDEX meeting_attendance_meeting ON meeting_attendance (meeting_id);

CREATE TABLE meeting_chat (
    id BIGSERIAL PRIMARY KEY,
    meeting_id BIGINT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    user_id BIGINT,
    at_ms BIGINT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX meeting_chat_meeting ON meeting_chat (meeting_id);

-- Files shared in a meeting (the bytes are under the data directory, meetings/ID/).
CREATE TABLE meeting_documents (
    id BIGSERIAL PRIMARY KEY,
    meeting_id BIGINT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    uploader TEXT NOT NULL,
    user_id BIGINT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX meeting_documents_meeting ON meeting_documents (meeting_id);

-- Votes ("biểu quyết"): options is a JSON array of strings.
CREATE TABLE meeting_votes (
    id BIGSERIAL PRIMARY KEY,
    meeting_id BIGINT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    options TEXT NOT NULL,
    secret BIGINT NOT NULL,
    opened_ms BIGINT NOT NULL,
    closed_ms BIGINT
);
CREATE INDEX meeting_votes_meeting ON meeting_votes (meeting_id);

-- One ballot per voter (a user, or a guest's attendance); option is NULL for a secret
-- ballot, whose choice is only in the tally.
CREATE TABLE meeting_ballots (
    vote_id BIGINT NOT NULL REFERENCES meeting_votes (id) ON DELETE CASCADE,
    voter TEXT NOT NULL,
    name TEXT NOT NULL,
    option_index BIGINT,
    cast_ms BIGINT NOT NULL,
    PRIMARY KEY (vote_id, voter)
);

CREATE TABLE meeting_tally (
    vote_id BIGINT NOT NULL REFERENCES meeting_votes (id) ON DELETE CASCADE,
    option_index BIGINT NOT NULL,
    votes BIGINT NOT NULL,
    PRIMARY KEY (vote_id, option_index)
);

-- Secrets the server made for itself (e.g. 'meeting_links': the HMAC key of guest links).
CREATE TABLE server_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
