-- API tokens made with `ferry tokens add` (or POST /api/tokens): only a SHA-256 of each is kept.
-- Tokens are 32 random bytes, so a fast hash loses nothing to guessing.
CREATE TABLE ferry_api_tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'read', 'orders')),
    sha256     TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);

-- Every call that changes something, with who made it: the token's name and role.
CREATE TABLE ferry_api_actions (
    id         TEXT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    role       TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    status     INTEGER NOT NULL,
    request_id TEXT NOT NULL DEFAULT ''
);
