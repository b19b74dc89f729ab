-- Federation: grants of a whole node below this one, and everything below it, to a user:
-- every camera whose node path is `path` or starts with `path/` (e.g. 'huyen-a' covers
-- 'huyen-a' and 'huyen-a/xa-b'), including cameras the node adds later.
-- Keep migrations/sqlite/ and migrations/postgres/ in step.

CREATE TABLE node_grants (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    PRIMARY KEY (user_id, path)
);
