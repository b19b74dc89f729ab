-- Federation: meetings across levels. A meeting made here may invite nodes below this
-- one (meeting_nodes: their paths, e.g. 'huyen-a' and 'huyen-a/xa-b'). A meeting that
-- came from the parent is kept here too, under the same id, with `home` = 'parent', the
-- chair's name as the parent shows it, and in meeting_nodes the paths it invites relative
-- to this node ('' is this node itself).
-- Keep migrations/sqlite/ and migrations/postgres/ in step.

CREATE TABLE meeting_nodes (
    meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    PRIMARY KEY (meeting_id, path)
);
ALTER TABLE meetings ADD COLUMN home TEXT;
ALTER TABLE meetings ADD COLUMN chair_name TEXT;
