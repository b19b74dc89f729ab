-- Federation: the nodes registered below this one (its children in the tree of xaso
-- nodes), each with the hash of its join secret and the state of its link as the server
-- last recorded it (for `xaso node list`; the live figures come from the running server).
-- Keep migrations/sqlite/ and migrations/postgres/ in step.

CREATE TABLE nodes (
    id BIGSERIAL PRIMARY KEY,
    -- A path segment: lower-case letters, digits and '-' (e.g. 'xa-b').
    name TEXT NOT NULL UNIQUE,
    -- Free text, e.g. 'commune', 'district'.
    level TEXT NOT NULL,
    -- SHA-256 (hex) of the secret the child presents.
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    -- 1 while the child's link is up.
    link_up BIGINT NOT NULL DEFAULT 0,
    -- When the link last went up or down.
    link_since_ms BIGINT,
    -- The address the child last connected from.
    link_address TEXT
);
