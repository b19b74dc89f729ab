-- Federation: the cameras of the nodes below this one, as their child reports them. Each is
-- a row of the catalogue (so ids, grants and audit work as for local cameras) with
-- origin = 'remote', the child it came through (removing the child removes its cameras
-- and their grants), its id at that child, and the path of the node it is at, relative to
-- this one (e.g. 'huyen-a/xa-b'). Its name column holds the path and the camera's own name
-- joined by control characters (local names have none), so that the names of two
-- communes' cameras, or a commune's and a local one, never collide.
-- Keep migrations/sqlite/ and migrations/postgres/ in step.

ALTER TABLE cameras ADD COLUMN node_id INTEGER REFERENCES nodes (id) ON DELETE CASCADE;
ALTER TABLE cameras ADD COLUMN remote_id INTEGER;
ALTER TABLE cameras ADD COLUMN node_path TEXT;
-- The camera's state at its node (recording, streaming, failed, ...), as last reported.
ALTER TABLE cameras ADD COLUMN remote_state TEXT;
CREATE UNIQUE INDEX cameras_remote ON cameras (node_id, remote_id);
